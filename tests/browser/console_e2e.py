"""The console and developer portal end to end in Debian's Chromium, driven by selenium.

Run by tests/browser.rs, which starts the gateway, its control plane and a mock upstream and
passes their addresses as one JSON argument. Every wait is for something on the page; the only
timed loop is the analytics one, which waits for the minute of the call to close (the rollups
are per minute).
"""

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CFG = json.loads(sys.argv[1])
ADMIN = CFG["admin"]
SHOTS = CFG["screenshots"]
PASSWORD = "correct horse battery staple"
os.makedirs(SHOTS, exist_ok=True)
DRIVERS = []


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def browser(width=1280, height=900):
    o = webdriver.ChromeOptions()
    o.binary_location = os.environ.get("RINGWAY_CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--lang=en-GB"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service(os.environ.get("RINGWAY_CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=svc, options=o)
    DRIVERS.append(d)
    return d


def wait(d, cond, what, timeout=15):
    try:
        return WebDriverWait(d, timeout).until(cond)
    except TimeoutException:
        shot(d, "FAILED-" + re.sub(r"[^a-z0-9]+", "-", what.lower()))
        raise AssertionError(f"timed out waiting for {what}; page: {d.current_url}\n{d.find_element(By.TAG_NAME, 'body').text[:2000]}")


def el(d, css, timeout=15):
    return wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, css)), css, timeout)


def clickable(d, css):
    return wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, css)), css)


def text_in(d, css, text, timeout=15):
    wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text), f"{text!r} in {css}", timeout)


def content_in(d, css, text, timeout=15):
    """`text` in the element's content, shown or folded away (a closed <details>)."""
    wait(d, lambda d: text in (d.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", css) or ""),
        f"{text!r} in the content of {css}", timeout)


def go(d, hash_):
    d.get(ADMIN + "/#" + hash_)
    # The page has rendered when its heading is there.
    el(d, "main h1")


def set_value(d, css, value):
    e = el(d, css)
    d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", e, value)


def type_into(d, css, value):
    e = el(d, css)
    e.clear()
    e.send_keys(value)


def submit(d, form_css):
    clickable(d, form_css + " button[type=submit]").click()


def confirm_dialog(d, reason=None, numbers=None):
    dlg = el(d, "dialog[open]")
    if reason is not None:
        dlg.find_element(By.CSS_SELECTOR, "input[name=reason]").send_keys(reason)
    for name, value in (numbers or {}).items():
        dlg.find_element(By.CSS_SELECTOR, f"input[name={name}]").send_keys(str(value))
    clickable(d, "#dialog-confirm").click()
    wait(d, EC.invisibility_of_element_located((By.CSS_SELECTOR, "dialog[open]")), "the dialog to close")


def shot(d, name, toasts=False):
    if not toasts:
        # Earlier pages' notices would cover this one's content.
        d.execute_script("const t = document.getElementById('toast'); if (t) t.replaceChildren();")
    d.save_screenshot(os.path.join(SHOTS, name + ".png"))


BAD_LOG = re.compile(r"Content Security Policy|Uncaught|SyntaxError|TypeError|ReferenceError", re.I)


def check_logs(d, where):
    bad = [l["message"] for l in d.get_log("browser") if BAD_LOG.search(l["message"])]
    assert not bad, f"{where}: the browser reported {bad}"


def check_labels(d, where):
    unlabeled = d.execute_script("""
        return [...document.querySelectorAll('main input, main select, main textarea, dialog[open] input')]
          .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
          .map(e => e.name || e.id || e.outerHTML.slice(0, 80));""")
    assert not unlabeled, f"{where}: inputs without a label: {unlabeled}"


CONTRAST = """
    // WCAG 2.x contrast of every visible text element against the background it is drawn on.
    const lum = ([r, g, b]) => {
      const c = [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const rgba = s => (s.match(/[\\d.]+/g) || []).map(Number);
    const bg = el => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c;
      }
      return [255, 255, 255];
    };
    const bad = [];
    for (const el of document.querySelectorAll('body *')) {
      if (!el.offsetParent || ['SCRIPT', 'STYLE', 'CANVAS', 'OPTION'].includes(el.tagName)) continue;
      if (el.closest('.uplot')) continue;  // the chart draws its own axes
      const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const st = getComputedStyle(el);
      if (el.disabled || st.opacity < 1) continue;
      const fg = rgba(st.color), b = bg(el);
      const [l1, l2] = [lum(fg), lum(b)].sort((x, y) => y - x);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && +st.fontWeight >= 700);
      if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
    return bad;
"""


def check_contrast(d, where):
    bad = d.execute_script(CONTRAST)
    assert not bad, f"{where}: text below WCAG AA contrast: {bad[:10]}"


def visit(d, hash_, name, heading=None):
    go(d, hash_)
    if heading:
        text_in(d, "main h1", heading)
    check_labels(d, hash_)
    check_contrast(d, hash_)
    check_logs(d, hash_)
    shot(d, name)


def api(d, method, path, body=None, csrf=True):
    """A call from the page's own context (its cookie), with or without the CSRF header."""
    return d.execute_async_script("""
        const [method, path, body, withCsrf, done] = arguments;
        (async () => {
          const s = await fetch('/api/v1/session').then(r => r.json());
          const headers = {'Content-Type': 'application/json'};
          if (withCsrf === true) headers['X-CSRF-Token'] = s.csrf_token;
          else if (typeof withCsrf === 'string') headers['X-CSRF-Token'] = withCsrf;
          const r = await fetch('/api/v1' + path, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
          done({status: r.status, body: await r.text()});
        })().catch(e => done({status: -1, body: String(e)}));
    """, method, path, body, csrf)


def hash_id(d):
    return urllib.parse.unquote(d.current_url.split("#", 1)[1].rsplit("/", 1)[1])


def sign_in_operator(d, base=None):
    d.get((base or ADMIN) + "/#/login")
    clickable(d, "#tab-operator").click()
    type_into(d, "#login-token", CFG["token"])
    submit(d, "#login-form")
    el(d, "#sign-out")


def sign_in_user(d, email, password=PASSWORD):
    d.get(ADMIN + "/#/login")
    el(d, "#login-email")
    # Keyboard only: Tab reaches the email field, the focus is visible, Enter submits.
    d.execute_script("document.activeElement.blur(); document.body.focus();")
    body = d.find_element(By.TAG_NAME, "body")
    for _ in range(12):
        if d.execute_script("return document.activeElement.id") == "login-email":
            break
        d.switch_to.active_element.send_keys(Keys.TAB)
    assert d.execute_script("return document.activeElement.id") == "login-email", "Tab does not reach the email field"
    outline = d.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused field shows no focus outline"
    d.switch_to.active_element.send_keys(email)
    d.switch_to.active_element.send_keys(Keys.TAB)
    d.switch_to.active_element.send_keys(password + Keys.ENTER)
    el(d, "#sign-out")
    del body


OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Orders API", "version": "1.2.0", "description": "Place and look up orders."},
    "paths": {
        "/orders/{id}": {
            "get": {
                "tags": ["orders"], "summary": "One order",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "The order id"}],
                "responses": {"200": {"description": "The order", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}},
            }
        },
        "/orders": {
            "post": {
                "tags": ["orders"], "summary": "Place an order",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}},
                "responses": {"201": {"description": "Placed"}},
            }
        },
    },
    "components": {"schemas": {"Order": {"type": "object", "required": ["sku"], "properties": {
        "sku": {"type": "string", "description": "Stock keeping unit"}, "quantity": {"type": "integer"}}}}},
}


def create_service(op, tenant_id, name, prefix, visibility, openapi=None):
    go(op, "/services/new")
    Select(el(op, "#service-tenant")).select_by_value(tenant_id)
    type_into(op, "#service-name", name)
    Select(el(op, "#service-visibility")).select_by_value(visibility)
    Select(el(op, "#service-approval")).select_by_value("manual")
    set_value(op, "#service-routes", json.dumps([{"path_prefix": prefix}]))
    set_value(op, "#service-upstream", json.dumps({"targets": [CFG["upstream"]]}))
    if openapi:
        set_value(op, "#service-openapi", json.dumps(openapi))
    submit(op, "#service-create")
    text_in(op, "main h1", name)
    sid = hash_id(op)
    clickable(op, "button[data-action=publish]").click()
    confirm_dialog(op)
    text_in(op, "main .badge", "published")
    return sid


def create_tenant(op, name):
    go(op, "/tenants")
    type_into(op, "#tenant-name", name)
    submit(op, "#tenant-create")
    text_in(op, "main h1", "Tenant " + name)
    return hash_id(op)


def add_member(op, email, role):
    type_into(op, "#member-email", email)
    type_into(op, "#member-password", PASSWORD)
    Select(el(op, "#member-role")).select_by_value(role)
    submit(op, "#member-create")
    text_in(op, "main table", email)


def main():
    op = browser()
    step("the operator signs in with the admin token")
    sign_in_operator(op)
    check_logs(op, "sign-in")

    step("the operator creates two tenants, their members and two services")
    acme = create_tenant(op, "acme")
    add_member(op, "owner@acme.example", "admin")
    devco = create_tenant(op, "devco")
    add_member(op, "dev@devco.example", "developer")
    add_member(op, "viewer@devco.example", "viewer")
    shot(op, "tenant")
    orders = create_service(op, acme, "orders", "/orders", "public", OPENAPI)
    shot(op, "service")
    internal = create_service(op, acme, "internal-billing", "/internal", "private")

    step("the developer of another tenant finds the public service, not the private one")
    dev = browser()
    sign_in_user(dev, "dev@devco.example")
    go(dev, "/portal")
    type_into(dev, "#catalog-search", "orders")
    text_in(dev, "main table", "orders")
    visit(dev, "/portal", "portal-catalog", "API catalog")
    type_into(dev, "#catalog-search", "internal")
    text_in(dev, "main .paged", "No APIs match.")
    go(dev, "/portal/services/" + internal)
    text_in(dev, "main .alert.error", "no service")

    step("the developer reads the docs and requests access for a new app")
    go(dev, "/apps")
    type_into(dev, "#app-name", "checkout")
    submit(dev, "#app-create")
    text_in(dev, "main h1", "App checkout")
    app_id = hash_id(dev)
    go(dev, "/portal/services/" + orders)
    text_in(dev, "main", "Orders API")
    content_in(dev, "main .openapi", "Stock keeping unit")
    content_in(dev, "main .openapi", "/orders/{id}")
    wait(dev, lambda d: "checkout" in el(d, "#access-app").text, "the app in the request form")
    submit(dev, "#access-form")
    text_in(dev, "#request-access ~ div table", "pending")
    check_labels(dev, "service page")
    check_logs(dev, "service page")
    shot(dev, "portal-service")

    step("the service's admin sees the request in the inbox and approves it")
    visit(op, "/subscriptions", "subscription-inbox", "Subscriptions")
    text_in(op, "main table", "checkout")
    clickable(op, "button[data-action=approve]").click()
    check_labels(op, "the approval dialog")
    confirm_dialog(op, numbers={"per_minute": 600})
    text_in(op, "main .paged", "Nothing here.")
    subs = json.loads(api(op, "GET", "/subscriptions?state=approved", None)["body"])
    assert subs["items"][0]["quota"]["per_minute"] == 600, subs

    step("the developer sees the approval, creates a key and calls through try-it")
    go(dev, "/portal/requests")
    text_in(dev, "main table", "approved")
    shot(dev, "portal-requests")
    go(dev, "/apps/" + app_id)
    type_into(dev, "#key-name", "ci")
    submit(dev, "#key-create")
    key = el(dev, "#shown-once input[data-secret]").get_attribute("value")
    assert key.startswith("rw_"), key
    shot(dev, "app-key-shown-once")
    go(dev, "/apps")
    go(dev, "/apps/" + app_id)
    text_in(dev, "main table", "ci")
    assert not dev.find_elements(By.CSS_SELECTOR, "input[data-secret]"), "a key was shown twice"
    assert key not in dev.page_source, "the key is in the page again"
    go(dev, "/portal/services/" + orders)
    type_into(dev, "#try-path", "/orders/42")
    type_into(dev, "#try-key", key)
    submit(dev, "#try-form")
    text_in(dev, "#try-status", "200")
    text_in(dev, "#try-body-out", "order 42")
    dev.execute_script("document.getElementById('try-result').scrollIntoView({block: 'end'})")
    shot(dev, "portal-try-it")
    rid = el(dev, "#try-request-id").text
    # Without a key the gateway refuses, and says why.
    type_into(dev, "#try-key", "")
    el(dev, "#try-key").clear()
    submit(dev, "#try-form")
    text_in(dev, "#try-status", "401")

    step("the call is in the call log, with its detail")
    go(dev, "/calls")
    type_into(dev, "#calls-request-id", rid)
    deadline = time.time() + 30
    # The call log's writer flushes on its own beat: search again until the call is written.
    while not dev.find_elements(By.CSS_SELECTOR, f"a[href='#/calls/{rid}']"):
        assert time.time() < deadline, "the call never showed in the call log: " + el(dev, "main").text
        el(dev, "#calls-request-id").send_keys(Keys.ENTER)
        time.sleep(0.5)
    shot(dev, "call-log")
    go(dev, "/calls/" + rid)
    text_in(dev, "#call-record", "/orders/42")
    check_logs(dev, "call detail")
    shot(dev, "call-detail")

    step("the analytics page shows the call once its minute closes")
    go(dev, "/analytics?range=3600")
    deadline = time.time() + 100
    while True:
        total = el(dev, "#analytics-total").text
        if re.match(r"^[1-9]", total):
            break
        assert time.time() < deadline, f"the analytics never showed the call: {total}"
        time.sleep(2)
        # Re-run the query (the range select's change event).
        dev.execute_script("document.querySelector('#analytics-range').dispatchEvent(new Event('change', {bubbles: true}))")
        wait(dev, lambda d: d.find_elements(By.CSS_SELECTOR, "#analytics-total"), "the analytics to reload", 30)
    text_in(dev, "main", orders)
    el(dev, "#chart-calls canvas")
    check_labels(dev, "analytics")
    check_logs(dev, "analytics")
    shot(dev, "analytics")
    visit(op, "/analytics?range=3600", "analytics-operator", "Traffic")

    step("a viewer sees no buttons that change anything, and the API refuses it")
    viewer = browser()
    sign_in_user(viewer, "viewer@devco.example")
    go(viewer, "/apps")
    text_in(viewer, "main table", "checkout")
    assert not viewer.find_elements(By.CSS_SELECTOR, "#app-create"), "a viewer sees the new-app form"
    go(viewer, "/apps/" + app_id)
    text_in(viewer, "main table", "ci")
    assert not viewer.find_elements(By.CSS_SELECTOR, "#key-create, button[data-action=revoke], button[data-action=rotate]")
    go(viewer, "/services")
    assert not viewer.find_elements(By.CSS_SELECTOR, "#new-service")
    go(viewer, "/portal/services/" + orders)
    assert not viewer.find_elements(By.CSS_SELECTOR, "#access-form")
    shot(viewer, "viewer-portal")
    r = api(viewer, "POST", "/apps", {"tenant_id": devco, "name": "sneaky"})
    assert r["status"] == 403 and "forbidden" in r["body"], r
    r = api(viewer, "POST", f"/apps/{app_id}/keys", {})
    assert r["status"] == 403, r

    step("CSRF: a change without the token, with a wrong one, or from another site is refused")
    r = api(dev, "POST", "/apps", {"tenant_id": devco, "name": "no-token"}, csrf=False)
    assert r["status"] == 403 and "csrf_failed" in r["body"], r
    r = api(dev, "POST", "/apps", {"tenant_id": devco, "name": "bad-token"}, csrf="x" * 43)
    assert r["status"] == 403 and "csrf_failed" in r["body"], r
    page = ("<form method=post action='" + ADMIN + "/api/v1/apps' enctype='text/plain'>"
            "<input name='{\"tenant_id\":\"" + devco + "\",\"name\":\"cross-site\",\"x\":\"' value='\"}'></form>"
            "<script>document.forms[0].submit()</script>")
    dev.get("data:text/html;base64," + __import__("base64").b64encode(page.encode()).decode())
    wait(dev, lambda d: d.current_url.startswith(ADMIN), "the cross-site form to land")
    landed = dev.find_element(By.TAG_NAME, "body").text
    assert '"id"' not in landed and ("unauthorized" in landed or "csrf_failed" in landed or "unsupported_media_type" in landed), landed
    go(dev, "/apps")
    text_in(dev, "main table", "checkout")
    assert "cross-site" not in el(dev, "main").text and "no-token" not in el(dev, "main").text

    step("a narrow screen gets a menu button")
    dev.set_window_size(390, 844)
    dev.get(ADMIN + "/#/portal")
    dev.refresh()
    el(dev, "main h1")
    toggle = clickable(dev, "#menu-toggle")
    assert not el(dev, "#nav").is_displayed(), "the menu is open on a narrow screen"
    toggle.click()
    assert el(dev, "#nav").is_displayed(), "the menu button does not open the menu"
    assert toggle.get_attribute("aria-expanded") == "true"
    overflow = dev.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a narrow screen"
    check_contrast(dev, "narrow portal")
    shot(dev, "narrow-portal")
    dev.set_window_size(1280, 900)

    step("pages of the console render without errors")
    for page, heading, name in [("/", "Overview", "overview"), ("/tenants", "Tenants", "tenants"),
                                ("/users", "Members", "members"), ("/services", "Services", "services"),
                                ("/apps", "Apps & keys", "apps"), ("/ai", "AI gateway", "ai"),
                                ("/audit", "Audit log", "audit"), ("/calls", "Call log", "call-log")]:
        visit(op, page, name, heading)
    go(op, "/audit")
    text_in(op, "main table", "subscription.approve")

    step("the operator sees its console sessions and ends another browser's")
    other = browser()
    sign_in_operator(other)
    visit(op, "/sessions", "sessions", "Sessions")
    text_in(op, "main table", "this session")
    rows = op.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert len(rows) >= 2, [r.text for r in rows]
    # The newest session (the list is oldest first) is the other browser's.
    assert "this session" not in rows[-1].text, rows[-1].text
    rows[-1].find_element(By.TAG_NAME, "button").click()
    confirm_dialog(op)
    text_in(op, "#toast", "Session ended")
    wait(op, lambda d: len(d.find_elements(By.CSS_SELECTOR, "main tbody tr")) == len(rows) - 1, "the ended session leaves the list")
    r = other.execute_async_script("const done = arguments[0]; fetch('/api/v1/me').then(r => done(r.status));")
    assert r == 401, r
    r = op.execute_async_script("const done = arguments[0]; fetch('/api/v1/me').then(r => done(r.status));")
    assert r == 200, r
    visit(dev, "/sessions", "sessions-user", "Sessions & tokens")
    text_in(dev, "main table", "console session")
    text_in(dev, "main table", "this session")
    type_into(dev, "#token-form input[name=name]", "ci-deploy")
    submit(dev, "#token-form")
    token = el(dev, "#shown-once input[data-secret]").get_attribute("value")
    assert token.startswith("rwa_"), token
    text_in(dev, "main table", "ci-deploy")
    me = urllib.request.urlopen(urllib.request.Request(ADMIN + "/api/v1/me", headers={"Authorization": "Bearer " + token}))
    assert json.load(me)["user"]["email"] == "dev@devco.example"

    step("the lifecycle: edit, deprecate with a sunset, retire and delete; rotate and revoke a key")
    go(op, "/services/" + internal)
    el(op, "#service-edit summary").click()
    edit = el(op, "#service-edit form")
    q = edit.find_element(By.CSS_SELECTOR, "input[name=per_minute]")
    q.clear()
    q.send_keys("120")
    edit.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    content_in(op, "main .panel", '"per_minute":120')
    clickable(op, "button[data-action=retire]").click()
    confirm_dialog(op)
    text_in(op, "main .badge", "retired")
    clickable(op, "button[data-action=delete]").click()
    confirm_dialog(op)
    text_in(op, "main h1", "Services")
    go(op, "/services/" + orders)
    clickable(op, "button[data-action=deprecate]").click()
    confirm_dialog(op, reason="2027-06-30T00:00:00Z")
    text_in(op, "main .badge", "deprecated")
    go(dev, "/portal/services/" + orders)
    text_in(dev, "main .panel", "Sunset")
    text_in(dev, "#request-access", "Only a published API takes new requests.")
    go(dev, "/apps/" + app_id)
    text_in(dev, "main table", "ci")
    clickable(dev, "button[data-action=rotate]").click()
    confirm_dialog(dev)
    new_key = el(dev, "#shown-once input[data-secret]").get_attribute("value")
    assert new_key.startswith("rw_") and new_key != key
    wait(dev, lambda d: len(d.find_elements(By.CSS_SELECTOR, "button[data-action=revoke]")) == 1, "one live key after the rotation")
    text_in(dev, "main table", "revoked")
    clickable(dev, "button[data-action=revoke]").click()
    confirm_dialog(dev)
    wait(dev, lambda d: not d.find_elements(By.CSS_SELECTOR, "button[data-action=revoke]"), "no live key after revoking")

    step("signing out ends the session")
    clickable(dev, "#sign-out").click()
    el(dev, "#login-form")
    r = dev.execute_async_script("const done = arguments[0]; fetch('/api/v1/me').then(r => done(r.status));")
    assert r == 401, r

    step("a session expires")
    short = browser()
    sign_in_operator(short, CFG["admin_short"])
    el(short, "main h1")
    deadline = time.time() + 30
    while not short.find_elements(By.CSS_SELECTOR, "#login-form"):
        assert time.time() < deadline, "the short session never ended"
        time.sleep(0.5)
        short.execute_script("location.hash = '#/services?' + Date.now()")
    text_in(short, "#toast", "session has ended")
    shot(short, "session-ended", toasts=True)
    step("done")


if __name__ == "__main__":
    try:
        main()
    finally:
        for d in DRIVERS:
            try:
                d.quit()
            except Exception:
                pass
