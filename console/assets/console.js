// The console's only script: it refreshes the overview's counts in place.
// Everything else works without it. Fresh counts come from the server as
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

	document.addEventListener('DOMContentLoaded', function () {
		var section = document.getElementById('live');
		if (section) { schedule(section); }
	});
})();
