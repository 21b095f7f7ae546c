// Runs inside a copy of a gradscope page (check.py adds it; the pages themselves have no script)
// and writes what a reader would see into a pre element (id gradscope-check) as JSON, for --dump-dom:
// each chart's place on the page, whether it fills its column, and every text of it that the
// chart's edge cuts or that runs into another legend entry.
(function () {
  function box(r) {
    return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }
  function inside(inner, outer) {
    var slack = 0.5;  // CSS pixels of rounding
    return inner.left >= outer.left - slack && inner.right <= outer.right + slack &&
           inner.top >= outer.top - slack && inner.bottom <= outer.bottom + slack;
  }
  function overlap(a, b) {
    var w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
    var h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    return w > 1 && h > 1;
  }
  var charts = [];
  var svgs = document.querySelectorAll('svg');
  for (var i = 0; i < svgs.length; i++) {
    var svg = svgs[i];
    var r = svg.getBoundingClientRect();
    var title = svg.querySelector('title');
    var chart = {
      title: title ? title.textContent : '',
      box: box(r),
      column: svg.parentElement.clientWidth,
      legend: null,
      legend_entries: 0,
      problems: []
    };
    var texts = svg.querySelectorAll('text');
    for (var t = 0; t < texts.length; t++) {
      var tr = texts[t].getBoundingClientRect();
      if (tr.width === 0 && texts[t].textContent.trim() !== '') {
        chart.problems.push('text not rendered: ' + texts[t].textContent);
      } else if (!inside(tr, r)) {
        chart.problems.push('text cut by the chart\'s edge: ' + texts[t].textContent);
      }
    }
    var legend = svg.querySelector('g.legend');
    if (legend) {
      chart.legend = box(legend.getBoundingClientRect());
      var entries = legend.querySelectorAll('g.legend-entry');
      chart.legend_entries = entries.length;
      var rects = [];
      for (var e = 0; e < entries.length; e++) {
        var label = entries[e].querySelector('text');
        var lr = label.getBoundingClientRect();
        // Every character is there: the text is the entry's label (or starts with it, when the
        // chart adds what it overlaps).
        var name = entries[e].getAttribute('data-label');
        if (label.textContent.indexOf(name) !== 0) {
          chart.problems.push('legend text cut: ' + label.textContent + ' for ' + name);
        }
        for (var q = 0; q < rects.length; q++) {
          if (overlap(rects[q], lr)) {
            chart.problems.push('legend entries overlap: ' + name);
          }
        }
        rects.push(lr);
      }
    }
    charts.push(chart);
  }
  var out = document.createElement('pre');
  out.id = 'gradscope-check';
  out.textContent = JSON.stringify({
    errors: window.__gradscopeErrors || [],
    height: document.documentElement.scrollHeight,
    width: document.documentElement.clientWidth,
    charts: charts
  });
  document.body.appendChild(out);
})();
