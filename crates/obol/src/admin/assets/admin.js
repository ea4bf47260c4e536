// obol's admin dashboard script (served by obol; no inline scripts run).
// 1. Every <time datetime> is shown in the viewer's time zone.
// 2. A charge run's page polls its progress until the run is done.
(function () {
  'use strict';
  function localTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var d = new Date(t.getAttribute('datetime'));
      if (!isNaN(d.getTime())) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString();
      }
    });
  }
  localTimes(document);

  var run = document.getElementById('run');
  if (!run) { return; }
  var id = run.getAttribute('data-run');
  var done = ['completed', 'canceled'];
  function render(r) {
    var pct = Math.round(Math.min(Math.max(r.progress, 0), 1) * 100);
    var bar = run.querySelector('svg.progress');
    bar.setAttribute('aria-valuenow', String(pct));
    bar.setAttribute('data-progress', String(pct));
    bar.querySelector('rect.done').setAttribute('width', String(pct));
    run.querySelector('.pct').textContent = pct + ' %';
    run.setAttribute('data-status', r.status);
    document.getElementById('run-status').textContent = r.status;
    document.getElementById('rate').textContent = String(r.rate_per_second);
    Object.keys(r.counts).forEach(function (o) {
      var row = run.querySelector('tr[data-outcome="' + o + '"] .count');
      if (row) { row.textContent = String(r.counts[o]); }
    });
  }
  function poll() {
    fetch('/admin/charge-runs/' + encodeURIComponent(id) + '/progress', { credentials: 'same-origin' })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (r) {
        if (r) { render(r); }
        if (!r || done.indexOf(r.status) < 0) { setTimeout(poll, 1000); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  if (done.indexOf(run.getAttribute('data-status')) < 0) { setTimeout(poll, 500); }
})();
