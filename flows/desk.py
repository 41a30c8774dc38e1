"""The steward's desk in the browser: what is open now, each problem's rows as delivered, and the
CLI's actions (waive with a reason, dismiss a rejected file, retry, the raw file, an unknown area's
name made an alias and retried), each recorded with who and when (meta.quarantine resolved_*,
meta.steward_actions).

Served by `boligdata serve` beside the Prefect UI (`--desk-port`, default 4300) on 127.0.0.1. Every
change is a POST that must carry the desk's token (a hidden field of the desk's own forms, or the
`X-Boligdata-Token` header); without it the desk answers 403 and changes nothing. On loopback the
token is made per start (it keeps other web pages in the steward's browser from posting to the desk);
binding another address needs `--desk-expose` and a token the operator gives, and then reading needs
the token too (`?token=...` once; a cookie after that).

Writes use the one write sequence (`warehouse_write`); a retry from the desk runs the retry's steps in
this process (no Prefect flow run), like the CLI's flow does them."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import ipaddress
import secrets
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import duckdb
from jinja2 import Environment, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from transforms.ledger.deliveries import LedgerSnapshot
from transforms.ledger.runs import RunSummary
from transforms.reference import (
    ReferenceDataError,
    check_reference_tables,
    load_reference,
    reference_for,
    undone_on_failure,
)
from transforms.sources import normalize_label
from transforms.steward.quarantine import (
    StewardError,
    add_scope_alias,
    dismiss_file,
    read_deliveries,
    read_quarantine,
    read_raw_record,
    retry_quarantined,
    steward_user,
    waive,
)
from transforms.steward.status import (
    STYLE,
    header_of,
    read_status,
    render_status_html,
    write_status_page,
)
from warehouse.build import warehouse_write
from warehouse.files import internal_file

TOKEN_HEADER = "X-Boligdata-Token"
COOKIE = "boligdata_desk"
# Who acts, as the steward told the desk once (kept in their browser): the audit trail names a person,
# not the account the desk runs under
STEWARD_COOKIE = "boligdata_steward"

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))

_CONTROLS = {
    "file": _env.from_string("""<div class=actions>
<a href="/delivery/{{ item.delivery_id }}">rows</a> · <a href="/delivery/{{ item.delivery_id }}/raw">raw file</a>
<form method=post action="/dismiss"><input type=hidden name=token value="{{ token }}">
<input type=hidden name=delivery value="{{ item.delivery_id }}">
<input type=text name=reason placeholder="reason to close without a correction" required aria-label="reason">
<button>Close</button></form></div>"""),
    "group": _env.from_string("""<form method=post action="/waive"><input type=hidden name=token value="{{ token }}">
<input type=hidden name=source value="{{ item.source }}"><input type=hidden name=rule value="{{ item.rule }}">
<input type=text name=reason placeholder="reason to waive all {{ item.rows }}" required aria-label="reason">
<button>Waive all</button></form>"""),
    "row": _env.from_string("""<div class=actions><a href="/delivery/{{ item.delivery_id }}#line-{{ item.line_number }}">row</a>
<form method=post action="/waive"><input type=hidden name=token value="{{ token }}">
<input type=hidden name=delivery value="{{ item.delivery_id }}"><input type=hidden name=line value="{{ item.line_number }}">
<input type=text name=reason placeholder="reason" required aria-label="reason" style="width:9rem">
<button>Waive</button></form>{% if scopes %}
<form method=post action="/alias"><input type=hidden name=token value="{{ token }}">
<input type=hidden name=alias value="{{ item.value }}"><select name=scope aria-label="what it stands for">
{% for name, scope in scopes %}<option value="{{ scope }}">{{ name }} ({{ scope }})</option>{% endfor %}</select>
<button title="add the name as delivered to scope_aliases.csv and check every open row again">Alias and retry</button></form>{% endif %}</div>"""),
}

_TOOLBAR = _env.from_string("""<div class=note style="margin:1rem 0">
<form method=post action="/retry"><input type=hidden name=token value="{{ token }}">
<button>Retry open rows</button></form>
checks every open row again against the reference data in <code>{{ reference }}</code> (after you fixed it), and loads
what passes.
<form method=post action="/who" style="margin-top:.4rem"><input type=hidden name=token value="{{ token }}">
Acting as <b>{{ who }}</b>; your name for the record: <input type=text name=who value="{{ named }}" placeholder="e.g. Mette Hansen"
aria-label="your name" maxlength=80> <button>Use</button></form>{% if message %}<b>{{ message }}</b>{% endif %}</div>""")

_DELIVERY = _env.from_string("""<!DOCTYPE html><html lang=en><head><meta charset=utf-8>
<title>delivery {{ d.delivery_id }}: {{ d.source }}/{{ d.file_name }}</title><style>{{ style|safe }}</style></head><body>
<p><a href="/">&larr; the desk</a></p>
<h1>Delivery {{ d.delivery_id }}: {{ d.source }}/{{ d.file_name }}</h1>
<p class=muted>{{ d.status }}; received {{ d.received_at.strftime('%Y-%m-%d %H:%M') }}; {{ d.rows_read or 0 }} rows read,
{{ d.rows_loaded or 0 }} loaded, {{ d.rows_quarantined or 0 }} held back. <a href="/delivery/{{ d.delivery_id }}/raw">The file as delivered</a>.</p>
{% if d.reason %}<p class=note>{{ d.reason }}</p>{% endif %}
{% for row in rows %}
<h3 id="line-{{ row.line }}">Line {{ row.line }}</h3>
<table><thead><tr>{% for h in row.record %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody><tr>{% for h, v in row.record.items() %}<td{% if h in row.blamed %} style="background:#ffe3e3"{% endif %}><span class=value>{{ v if v is not none else '' }}</span></td>{% endfor %}</tr></tbody></table>
<table><thead><tr><th>rule</th><th>column</th><th>value</th><th>what the rule says</th><th>status</th><th>by / when / why</th><th></th></tr></thead><tbody>
{% for p in row.problems %}<tr><td><code>{{ p.rule }}</code></td><td>{{ p.column }}</td><td><span class=value>{{ p.value if p.value is not none else '' }}</span></td>
<td>{{ p.rule_description }}</td><td>{{ p.status }}</td>
<td>{{ p.resolved_by or '' }} {{ p.resolved_at.strftime('%Y-%m-%d %H:%M') if p.resolved_at else '' }} {{ p.note or '' }}</td>
<td>{% if p.status == 'open' %}<form method=post action="/waive"><input type=hidden name=token value="{{ token }}">
<input type=hidden name=delivery value="{{ d.delivery_id }}"><input type=hidden name=line value="{{ row.line }}">
<input type=hidden name=rule value="{{ p.rule }}"><input type=text name=reason placeholder="reason" required aria-label="reason" style="width:10rem">
<button>Waive</button></form>{% endif %}</td></tr>{% endfor %}
</tbody></table>
{% else %}<p>No quarantined rows in this delivery.</p>{% endfor %}
</body></html>""")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Desk:
    def __init__(self, warehouse: Path, reference_dir: Path | None = None, token: str | None = None,
                 tokens_for_reads: bool = False):
        self.warehouse = Path(warehouse).resolve()
        self.given_reference = reference_dir
        self.token = token or secrets.token_urlsafe(24)
        self.tokens_for_reads = tokens_for_reads
        self.lock = threading.Lock()  # one desk action at a time (the writer lock orders them with runs)

    @property
    def reference(self) -> Path:
        return reference_for(self.warehouse, self.given_reference)

    # --- access ---
    def _token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _may_read(self, request: Request) -> bool:
        return (not self.tokens_for_reads or self._token_ok(request.query_params.get("token"))
                or self._token_ok(request.cookies.get(COOKIE)))

    async def _form(self, request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", errors="replace")
        return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}

    @staticmethod
    def _forbidden() -> Response:
        return PlainTextResponse("403: this desk needs its token; nothing was changed\n", status_code=403)

    @staticmethod
    def _who(form: dict, request: Request) -> str:
        """The name a change is recorded under: given with the change, else the one the steward set
        (/who), else the desk's own account, marked as such."""
        return (form.get("who") or request.cookies.get(STEWARD_COOKIE) or "").strip() or f"{steward_user()} (desk)"

    def _read_response(self, request: Request, response: Response) -> Response:
        if self.tokens_for_reads and self._token_ok(request.query_params.get("token")):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

    # --- pages ---
    async def index(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._forbidden()
        status = read_status(self.warehouse, self.reference)
        aliases = self._alias_choices()
        page = render_status_html(status, links=True, controls=lambda kind, item: _CONTROLS[kind].render(
            item=item, token=self.token, scopes=aliases(item) if kind == "row" else None))
        toolbar = _TOOLBAR.render(token=self.token, reference=str(status.reference_dir), who=self._who({}, request),
                                  named=request.cookies.get(STEWARD_COOKIE, ""), message=request.query_params.get("done"))
        page = page.replace("<!--desk-toolbar-->", toolbar, 1)  # under the summary cards
        return self._read_response(request, HTMLResponse(page))

    async def status_json(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._forbidden()
        return JSONResponse(read_status(self.warehouse, self.reference).as_dict())

    def _delivery(self, delivery_id: int) -> dict | None:
        found = read_deliveries(self.warehouse).filter(delivery_id=delivery_id)
        return None if found.is_empty() else found.row(0, named=True)

    async def delivery(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._forbidden()
        delivery_id = int(request.path_params["delivery_id"])
        info = self._delivery(delivery_id)
        if info is None:
            return PlainTextResponse(f"404: no delivery {delivery_id}\n", status_code=404)
        problems = read_quarantine(self.warehouse, status=None, delivery_id=delivery_id)
        rows = []
        for line in problems["line_number"].unique(maintain_order=True):
            found = [{**p, "column": header_of(info["source"], p["column_name"])}
                     for p in problems.filter(line_number=line).iter_rows(named=True)]
            rows.append({"line": line, "record": read_raw_record(self.warehouse, delivery_id, line), "problems": found,
                         "blamed": {p["column"] for p in found if p["status"] == "open"}})
        return self._read_response(request, HTMLResponse(
            _DELIVERY.render(d=info, rows=rows, token=self.token, style=STYLE)))

    async def raw_file(self, request: Request) -> Response:
        if not self._may_read(request):
            return self._forbidden()
        delivery_id = int(request.path_params["delivery_id"])
        with duckdb.connect(str(internal_file(self.warehouse)), read_only=True) as conn:
            found = conn.execute("SELECT archive_path, encoding, file_name FROM meta.deliveries WHERE delivery_id = ?",
                                 [delivery_id]).fetchall()
        if not found or not found[0][0] or not Path(found[0][0]).is_file():
            return PlainTextResponse(f"404: no archived file for delivery {delivery_id}\n", status_code=404)
        path, encoding, name = found[0]
        data = Path(path).read_bytes()
        if encoding in (None, "xlsx"):
            return Response(data, media_type="application/octet-stream",
                            headers={"Content-Disposition": f'attachment; filename="{Path(name).name}"'})
        text = data.decode({"utf-8-sig": "utf-8-sig"}.get(encoding, encoding), errors="replace")
        return PlainTextResponse(text, headers={"X-Content-Type-Options": "nosniff"})

    def _alias_choices(self):
        """(name, area or bydel id) for an unknown area's closest known names: what its alias may stand for.
        No choices while the reference data cannot be read (the page says why)."""
        try:
            reference = load_reference(self.reference)
        except ReferenceDataError:
            return lambda item: []

        def choices(item: dict) -> list[tuple[str, str]]:
            if item.get("rule") != "unknown_area" or not item.get("value"):
                return []
            scopes = [reference.scopes_by_label.get(normalize_label(name)) for name in item.get("hint") or ()]
            return list(dict.fromkeys((name, scope.scope_id) for name, scope in zip(item["hint"], scopes)
                                      if scope is not None and scope.level in ("area", "bydel")))
        return choices

    # --- actions ---
    def _publish(self, action: str, change, edits: list | None = None):
        """Run CHANGE(write, run) under the one write sequence and return what it returns; the status page
        follows. EDITS: where the change records its reference edits, put back if it is not published."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        run = RunSummary(f"desk-{action}-{now:%Y%m%dT%H%M%S}", f"(desk {action})", str(self.warehouse), now,
                         LedgerSnapshot.read(self.warehouse).model_fingerprint)
        with (self.lock, undone_on_failure(edits) if edits is not None else contextlib.nullcontext(),
              warehouse_write(self.warehouse, run) as write):
            result = change(write, run)
        write_status_page(self.warehouse, self.reference)
        return result

    def _done(self, message: str) -> Response:
        return RedirectResponse("/?" + urlencode({"done": message}), status_code=303)

    async def set_who(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._token_ok(form.get("token") or request.headers.get(TOKEN_HEADER)):
            return self._forbidden()
        named = " ".join((form.get("who") or "").split())[:80]
        response = self._done(f"changes are recorded as {named}" if named else "changes are recorded under the desk's account")
        if named:
            response.set_cookie(STEWARD_COOKIE, named, max_age=365 * 86400, httponly=True, samesite="strict")
        else:
            response.delete_cookie(STEWARD_COOKIE)
        return response

    async def waive(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._token_ok(form.get("token") or request.headers.get(TOKEN_HEADER)):
            return self._forbidden()
        def number(name):
            value = (form.get(name) or "").strip()
            return int(value) if value else None
        try:
            delivery, line = number("delivery"), number("line")
            count = self._publish("waive", lambda write, run: waive(
                write.build, form.get("reason", ""), delivery, line, form.get("rule") or None, form.get("source") or None,
                self._who(form, request)))
        except (StewardError, ValueError) as problem:
            return PlainTextResponse(f"400: {problem}; nothing was changed\n", status_code=400)
        return self._done(f"waived {count} quarantined row problem(s): {form.get('reason', '').strip()}")

    async def dismiss(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._token_ok(form.get("token") or request.headers.get(TOKEN_HEADER)):
            return self._forbidden()
        try:
            delivery = int(form.get("delivery", ""))
            self._publish("dismiss", lambda write, run: dismiss_file(write.build, delivery, form.get("reason", ""),
                                                                     self._who(form, request)))
        except (StewardError, ValueError) as problem:
            return PlainTextResponse(f"400: {problem}; nothing was changed\n", status_code=400)
        return self._done(f"closed rejected delivery {delivery}: {form.get('reason', '').strip()}")

    async def retry(self, request: Request) -> Response:
        form = await self._form(request)
        if not self._token_ok(form.get("token") or request.headers.get(TOKEN_HEADER)):
            return self._forbidden()
        reference = self.reference
        try:
            check_reference_tables(reference)
        except ReferenceDataError as problem:
            return PlainTextResponse(f"400: {problem}; nothing was changed\n", status_code=400)
        outcomes = self._publish("retry", lambda write, run: self._retried(write, run, reference, self._who(form, request)))
        return self._done(_retry_message(outcomes))

    @staticmethod
    def _retried(write, run, reference: Path, who: str, publish_anyway: bool = False) -> list:
        """Every open row checked again against REFERENCE, and the marts rebuilt if any were (in WRITE); a
        retry that found nothing open publishes nothing, unless the write holds another change."""
        from warehouse.materialize import materialize, model_fingerprint

        outcomes = retry_quarantined(write.build, reference, who=who)
        if outcomes:  # the marts, and the run's record of what they were built from
            run.model_fingerprint = model_fingerprint(reference)
            materialize(write.build, reference)
        elif not publish_anyway:
            write.discard()
        return outcomes

    async def alias(self, request: Request) -> Response:
        """An unknown area's name as delivered made an alias of what the steward picked, and every open
        row checked again, in one write: the rows it held back load now."""
        form = await self._form(request)
        if not self._token_ok(form.get("token") or request.headers.get(TOKEN_HEADER)):
            return self._forbidden()
        reference, who, edits = self.reference, self._who(form, request), []

        def change(write, run):
            line = add_scope_alias(write.build, reference, form.get("alias", ""), form.get("scope", ""), who, edits)
            return line, self._retried(write, run, reference, who, publish_anyway=True)
        try:
            line, outcomes = self._publish("alias", change, edits=edits)
        except ReferenceDataError as problem:
            return PlainTextResponse(f"400: {problem}; nothing was changed\n", status_code=400)
        return self._done(f"added {line} to scope_aliases.csv; {_retry_message(outcomes)}")


def _retry_message(outcomes: list) -> str:
    if not outcomes:
        return "retry: no open quarantined rows"
    return (f"retry: {sum(o.released_rows for o in outcomes)} row(s) released, "
            f"{sum(o.still_open_rows for o in outcomes)} still quarantined")


def create_app(warehouse: Path, reference_dir: Path | None = None, token: str | None = None,
               tokens_for_reads: bool = False) -> Starlette:
    desk = Desk(warehouse, reference_dir, token, tokens_for_reads)
    app = Starlette(routes=[
        Route("/", desk.index),
        Route("/status.json", desk.status_json),
        Route("/delivery/{delivery_id:int}", desk.delivery),
        Route("/delivery/{delivery_id:int}/raw", desk.raw_file),
        Route("/waive", desk.waive, methods=["POST"]),
        Route("/dismiss", desk.dismiss, methods=["POST"]),
        Route("/retry", desk.retry, methods=["POST"]),
        Route("/alias", desk.alias, methods=["POST"]),
        Route("/who", desk.set_who, methods=["POST"]),
    ])
    app.state.desk = desk
    return app


def start_desk(warehouse: Path, host: str, port: int, token: str | None, expose: bool,
               reference_dir: Path | None = None):
    """The desk in a thread of this process (uvicorn); returns (server, thread). Refuses a non-loopback
    address without EXPOSE and a TOKEN."""
    import uvicorn

    if not is_loopback(host) and not (expose and token):
        raise ValueError(f"the desk binds {host} only with --desk-expose and a --desk-token "
                         "(or $BOLIGDATA_DESK_TOKEN); the default is 127.0.0.1")
    app = create_app(warehouse, reference_dir, token, tokens_for_reads=not is_loopback(host))
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="boligdata-desk", daemon=True)
    thread.start()
    return server, thread


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.desk --warehouse FILE [--port N]`: the desk alone (tests; serve starts it itself)."""
    import argparse
    import os

    import uvicorn

    parser = argparse.ArgumentParser(prog="boligdata-desk")
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4300)
    parser.add_argument("--expose", action="store_true")
    parser.add_argument("--token", default=os.environ.get("BOLIGDATA_DESK_TOKEN"))
    args = parser.parse_args(argv)
    if not is_loopback(args.host) and not (args.expose and args.token):
        parser.exit(2, f"boligdata: the desk binds {args.host} only with --expose and a --token\n")
    uvicorn.run(create_app(args.warehouse, args.reference, args.token, not is_loopback(args.host)),
                host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
