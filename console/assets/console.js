// The console's only script: it refreshes the overview's counts in place,
// and offers the browser's own time zone in the zone switch (the server
// cannot know it; UTC works without the script). Everything else works
// without it. Fresh counts come from the server as
// escaped HTML (the same template as the page), parsed inertly with
// DOMParser: nothing in it can run, and the Content-Security-Policy admits
// no inline script anyway.
(function () {
	'use strict';

	function schedule(section) {
		var every = (Number(section.dataset.refresh) || 5) * 1000;
		setTimeout(function () { refresh(section); }, every);
	}

	function refresh(section) {
		fetch(section.dataset.src, { credentials: 'same-origin', cache: 'no-store' })
			.then(function (resp) {
				if (!resp.ok) { throw new Error('status ' + resp.status); }
				return resp.text();
			})
			.then(function (html) {
				var doc = new DOMParser().parseFromString(html, 'text/html');
				var fresh = doc.getElementById('live');
				if (!fresh) { throw new Error('no counts in the answer'); }
				section.replaceWith(fresh);
				section = fresh;
			})
			.catch(function () {
				section.classList.add('stale');
			})
			.finally(function () { schedule(section); });
	}

	// offerLocalZone points the switch's "local" link at this page in the
	// browser's IANA zone; the server then shows and reads times in it.
	function offerLocalZone() {
		var a = document.getElementById('zone-local');
		var zone = '';
		try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ''; } catch (e) { zone = ''; }
		if (!a || !zone) { return; }
		var here = a.dataset.here;
		a.href = here + (here.indexOf('?') < 0 ? '?' : '&') + 'tz=' + encodeURIComponent(zone);
		a.textContent = 'local (' + zone + ')';
		a.hidden = false;
	}

	document.addEventListener('DOMContentLoaded', function () {
		offerLocalZone();
		var section = document.getElementById('live');
		if (section) { schedule(section); }
	});
})();
