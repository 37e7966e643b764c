/* Draws the report charts with the vendored Chart.js from the JSON that analytics.charts embeds in the page
   (<script type="application/json">, made by Django's json_script). Labels arrive formatted by the server;
   axis numbers use the separators and currency the server sent, so they read like the tables beneath.
   In Arabic the axes mirror: time runs right to left, the value axis stands on the right. */
(function () {
  "use strict";
  var PALETTE = {
    sent: "#2563eb", delivered: "#16a34a", clicked: "#f59e0b", revenue: "#0f766e",
    push: "#2563eb", sms: "#a855f7", whatsapp: "#16a34a", email: "#f59e0b", count: "#0f766e"
  };
  var FALLBACK = ["#2563eb", "#16a34a", "#f59e0b", "#a855f7", "#dc2626", "#0f766e"];

  function formatNumber(value, separators, decimals) {
    var fixed = Math.abs(value).toFixed(decimals);
    var parts = fixed.split(".");
    var whole = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, separators.thousands);
    var text = parts.length > 1 ? whole + separators.decimal + parts[1] : whole;
    return (value < 0 ? "-" : "") + text;
  }

  function formatter(spec, money) {
    return function (value) {
      var decimals = Number.isInteger(value) ? 0 : 2;
      var text = formatNumber(Number(value), spec.separators, decimals);
      if (!money || !spec.currency) { return text; }
      return spec.currency.before ? spec.currency.symbol + "\u00a0" + text : text + "\u00a0" + spec.currency.symbol;
    };
  }

  function colour(series, index) {
    return PALETTE[series.key] || FALLBACK[index % FALLBACK.length];
  }

  function datasets(spec) {
    var mixed = spec.series.some(function (s) { return s.money; }) && spec.series.some(function (s) { return !s.money; });
    return spec.series.map(function (series, index) {
      var line = spec.kind === "line" || (mixed && series.money);
      return {
        label: series.label, data: series.data, borderColor: colour(series, index),
        backgroundColor: colour(series, index) + (line ? "33" : "cc"), type: line ? "line" : "bar",
        yAxisID: mixed && series.money ? "money" : "y", tension: 0.25, pointRadius: series.data.length > 40 ? 0 : 2,
        order: line ? 0 : 1
      };
    });
  }

  function options(spec) {
    var money = spec.series.length > 0 && spec.series.every(function (s) { return s.money; });
    var funnel = spec.kind === "funnel";
    var valueAxis = {beginAtZero: true, ticks: {callback: formatter(spec, money)}};
    var categoryAxis = {ticks: {autoSkip: true, maxRotation: 0}, grid: {display: false}};
    var scales = {};
    if (funnel) {
      scales.x = Object.assign(valueAxis, {reverse: spec.rtl});
      scales.y = Object.assign(categoryAxis, {position: spec.rtl ? "right" : "left"});
    } else {
      scales.x = Object.assign(categoryAxis, {reverse: spec.rtl});
      scales.y = Object.assign(valueAxis, {position: spec.rtl ? "right" : "left"});
      if (spec.series.some(function (s) { return s.money; }) && !money) {
        scales.money = {beginAtZero: true, position: spec.rtl ? "left" : "right", grid: {drawOnChartArea: false},
                        ticks: {callback: formatter(spec, true)}};
      }
    }
    return {
      indexAxis: funnel ? "y" : "x", responsive: true, maintainAspectRatio: false, animation: false,
      interaction: {mode: "index", intersect: false}, scales: scales,
      plugins: {
        legend: {display: !funnel, rtl: spec.rtl, textDirection: spec.rtl ? "rtl" : "ltr",
                 align: "start"},
        tooltip: {rtl: spec.rtl, textDirection: spec.rtl ? "rtl" : "ltr", callbacks: {
          label: function (item) {
            var series = spec.series[item.datasetIndex];
            return series.label + ": " + formatter(spec, series.money)(item.raw === null ? 0 : item.raw);
          }
        }}
      }
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || !window.Chart) { return; }
    var spec = JSON.parse(source.textContent);
    var chart = new window.Chart(canvas, {type: spec.kind === "line" ? "line" : "bar",
                                          data: {labels: spec.labels, datasets: datasets(spec)}, options: options(spec)});
    canvas.dataset.drawn = "true";
    return chart;
  }

  function drawAll(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
})();
