/* Draws the report charts with Chart.js from the JSON block #report-data. The same numbers are in the
   tables beside each chart, so the page says everything without this script. No inline script: the CSP
   forbids it, and the data block is type application/json (never executed). */
(function () {
  "use strict";
  // One colour per kind, distinguishable for the common colour-vision deficiencies (Okabe-Ito).
  var COLOURS = { block: "#0072B2", alert: "#D55E00", report: "#009E73", request: "#CC79A7" };

  function draw(canvas, chart, actions, horizontal) {
    var datasets = actions.map(function (action) {
      return { label: action.label, data: chart.series[action.key], backgroundColor: COLOURS[action.key] || "#555" };
    });
    var valueAxis = { stacked: true, beginAtZero: true, ticks: { precision: 0 } };
    var labelAxis = { stacked: true };
    return new window.Chart(canvas, {
      type: "bar",
      data: { labels: chart.labels, datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,  // numbers to read, not a show: drawn at once, for every reader and every screenshot
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function start() {
    var source = document.getElementById("report-data");
    if (!source || !window.Chart) {
      return;
    }
    var data = JSON.parse(source.textContent);
    [["days", false], ["categories", true], ["groups", true]].forEach(function (spec) {
      var canvas = document.getElementById("chart-" + spec[0]);
      var chart = data.charts[spec[0]];
      if (canvas && chart && chart.labels.length) {
        canvas.parentElement.parentElement.classList.add("drawn");  // shows the chart box (reports.css)
        if (spec[1]) {
          // Horizontal bars: room for each label, however many categories or groups there are.
          canvas.parentElement.style.height = Math.max(12, 3 + 2.2 * chart.labels.length) + "rem";
        }
        draw(canvas, chart, data.actions, spec[1]);
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
