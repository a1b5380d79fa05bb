"""Accessibility checks for the browser tests: axe-core run inside the page, and keyboard
walking by Tab alone.

axe-core comes from the pinned `axe-playwright-python` wheel (it ships axe.min.js). Its
`Axe.run` loads the engine with `page.evaluate`, which runs through the DevTools protocol
and is not subject to the page's Content-Security-Policy, so the CSP users get is tested
as it is: nothing is injected as a <script>, and CSP is never bypassed."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe

# The rules axe tags as WCAG 2.0 / 2.1, levels A and AA: the standard the README claims.
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = ("serious", "critical")

_AXE = Axe()


def axe_violations(page) -> list[dict]:
    """Every WCAG 2.1 A/AA violation axe finds on the page as it is now."""
    options = {"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}
    return _AXE.run(page, options=options).response["violations"]


def describe(violations: list[dict]) -> list[str]:
    """One line per violation: impact, rule, how many nodes, the first few selectors and
    the first node's failure summary (which carries the measured contrast ratio)."""
    lines = []
    for v in violations:
        targets = [" ".join(map(str, n["target"])) for n in v["nodes"][:4]]
        summary = v["nodes"][0].get("failureSummary", "").replace("\n", " ")[:220]
        lines.append(f"{v['impact']} {v['id']} x{len(v['nodes'])} {targets}: {summary}")
    return lines


def blocking_violations(page) -> list[str]:
    """The serious and critical WCAG 2.1 A/AA violations on the page, described."""
    return describe([v for v in axe_violations(page) if v["impact"] in BLOCKING])


def scrolls_sideways(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 when it reflows)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return {tag: "BODY", id: "", name: ""};
  const label = el.labels && el.labels.length ? el.labels[0].innerText : "";
  const name = el.getAttribute("aria-label") || label || el.innerText || el.value || "";
  return {tag: el.tagName, id: el.id, name: name.trim().replace(/\\s+/g, " ")};
}"""


def focused(page) -> dict:
    """The focused element: its tag, id and accessible-ish name (label, text or value)."""
    return page.evaluate(FOCUSED)


def tab_to(page, *, name: str | None = None, id: str | None = None, limit: int = 150) -> dict:
    """Press Tab (only Tab) until the focused element has this id or this name; fail
    naming what was reached if it is not reached within `limit` presses."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        if (id is not None and now["id"] == id) or (name is not None and now["name"] == name):
            return now
        seen.append(now["id"] or now["name"][:30])
    raise AssertionError(f"Tab never reached {id or name!r}; reached: {seen}")
