package normalize

import "slices"

// EventTypes lists, per provider, every event type its documentation names,
// in the documents' order. Normalize accepts other types too (providers add
// them); this list is what a simulator should cover. Treat it as read-only.
var EventTypes = map[string][]string{
	OpenLoyalty: {
		"customer.updated",
		"customer.deleted",
		"customer.registered",
		"customer.deactivated",
		"customer.level_changed_automatically",
		"customer.level_changed",
		"transaction.registered",
		"transaction.assigned_to_customer",
		"account.available_points_amount_changed",
		"customer.bought_campaign",
		"account.expiring_points_notification",
		"account.points_transfer",
		"account.expiring_level_notification",
		"campaign.coupon_expiration",
	},
	Sublytics: {
		"order_updated",
		"order_abandonned", // sic: the provider's spelling
		"transaction_completed",
		"transaction_skipped",
		"transaction_unskipped",
		"order_offer_updated",
		"order_offer_cancelled",
		"shipment_shipped",
		"shipment_cancelled",
		"shipment_fulfilled",
	},
	USAePay: {
		"cau.submitted",
		"cau.updated_expiration",
		"cau.updated_card",
		"cau.contact_customer",
		"cau.account_closed",
		"ach.submitted",
		"ach.settled",
		"ach.returned",
		"ach.failed",
		"ach.note_added",
		"product.inventory.ordered",
		"product.inventory.adjusted",
		"transaction.sale.success",
		"transaction.sale.failure",
		"transaction.sale.voided",
		"transaction.sale.captured",
		"transaction.sale.adjusted",
		"transaction.sale.queued",
		"transaction.sale.unvoided",
		"transaction.refund.success",
		"transaction.refund.voided",
		"settlement.batch.success",
		"settlement.batch.failure",
	},
}

// LoyaltyBatchTypes are the loyalty types whose data the platform may send as
// an array of up to 1000 items. Normalize splits an array for any loyalty
// type; these are the ones a simulator should batch.
var LoyaltyBatchTypes = []string{
	"account.expiring_points_notification",
	"account.expiring_level_notification",
	"campaign.coupon_expiration",
}

// SublyticsObjectTypes maps each documented Sublytics event to its
// webhook_type, the key under webhook_data that holds the object.
var SublyticsObjectTypes = map[string]string{
	"order_updated":         "order",
	"order_abandonned":      "order",
	"transaction_completed": "transaction",
	"transaction_skipped":   "transaction",
	"transaction_unskipped": "transaction",
	"order_offer_updated":   "order_offer",
	"order_offer_cancelled": "order_offer",
	"shipment_shipped":      "shipment",
	"shipment_cancelled":    "shipment",
	"shipment_fulfilled":    "shipment",
}

// Documented reports whether eventType is in EventTypes[provider].
func Documented(provider, eventType string) bool {
	return slices.Contains(EventTypes[provider], eventType)
}
