"""The dashboard and a campaign report in Chromium: the charts are drawn (a Chart.js instance and painted
pixels), in English and, after the language switcher, in Arabic, right to left with mirrored axes."""
import pytest

from tests.analytics.test_views import friday  # noqa: F401 - fixture: a sent A/B campaign with a click and an order
from tests.campaigns.test_campaign_engine import run_now, sandbox  # noqa: F401 - fixtures
from tests.e2e.helpers import log_in_as_marketer

pytestmark = pytest.mark.e2e

# How many pixels of the chart's canvas are painted, and how its axes are set; 0 when no chart was made.
CHART_STATE = """id => {
  const canvas = document.querySelector(`canvas[data-chart="${id}"]`);
  const chart = window.Chart && Chart.getChart(canvas);
  if (!chart) { return {painted: 0}; }
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i]) { painted++; } }
  const scales = chart.options.scales;
  return {painted, type: chart.config.type, indexAxis: chart.options.indexAxis, legendRtl: !!chart.options.plugins.legend.rtl,
          xReversed: !!scales.x.reverse, valueSide: (chart.options.indexAxis === "y" ? scales.y : scales.y).position,
          datasets: chart.data.datasets.map(d => d.label)};
}"""


def chart_state(page, chart_id):
    page.wait_for_selector(f'canvas[data-chart="{chart_id}"][data-drawn="true"]')
    return page.evaluate(CHART_STATE, chart_id)


def switch_to_arabic(page):
    page.click("button[lang=ar]")
    page.wait_for_selector("html[dir=rtl]")


def test_the_dashboard_draws_its_charts_in_english_and_in_arabic(page, store, friday):
    log_in_as_marketer(page, "/app/")

    daily = chart_state(page, "chart-daily")
    assert daily["painted"] > 1000 and not daily["xReversed"] and daily["valueSide"] == "left"
    assert daily["datasets"] == ["Sent", "Delivered", "Clicked", "Revenue"]
    assert chart_state(page, "chart-subscribers")["painted"] > 1000
    assert page.inner_text("#stat-click-revenue .value") == "SAR\u00a0250.00"
    assert page.get_attribute('canvas[data-chart="chart-daily"]', "aria-describedby") == "data-daily"

    switch_to_arabic(page)

    assert page.url.endswith("/app/")
    daily = chart_state(page, "chart-daily")
    assert daily["painted"] > 1000 and daily["legendRtl"] and daily["xReversed"] and daily["valueSide"] == "right"
    assert page.inner_text("#stat-click-revenue .value").startswith("250,00")
    assert page.evaluate("getComputedStyle(document.querySelector('.app-main')).direction") == "rtl"


def test_a_campaign_report_draws_its_funnel_in_both_languages(page, store, friday):
    log_in_as_marketer(page, f"/app/campaigns/{friday.pk}/report/")

    funnel = chart_state(page, "chart-funnel")
    assert funnel["painted"] > 1000 and funnel["indexAxis"] == "y" and not funnel["xReversed"]
    page.click("#table-funnel summary")
    assert page.locator("#data-funnel tbody tr").count() == 6  # the chart's figures as a table
    assert chart_state(page, "chart-daily")["painted"] > 1000

    switch_to_arabic(page)

    funnel = chart_state(page, "chart-funnel")
    assert funnel["painted"] > 1000 and funnel["xReversed"] and funnel["valueSide"] == "right"
    assert page.get_attribute("html", "lang") == "ar"
    variants = page.locator("#table-variants").bounding_box()
    first_header = page.locator("#table-variants thead th").first.bounding_box()
    assert first_header["x"] + first_header["width"] > variants["x"] + variants["width"] / 2  # columns run from the right
