"""The web page: search, read a hit in its document, the state of every folder and the
daemon's health, in the browser. Served on the daemon's HTTP endpoint at `/` (`docsync run
--http-port N`) and by `docsync serve` for a synced embedded store.

- `pages`: the static files (`static/`: plain HTML, CSS and JavaScript) and the strict
  headers every answer carries.
- `views`: the JSON the page reads besides `/search`: `/api/folders`, `/api/health`,
  `/api/document`, from `folders`, `health` and `document`.
- `standalone`: `docsync serve`.

The page asks for the endpoint's token once and keeps it in the tab's sessionStorage; its
files carry no data and are served without the token (behind the Host check), everything
else is behind the token as before.
"""
