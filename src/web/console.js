/* The coordinator's console and the national body's dashboard. Every
 * screen is built from the admin API's answers, asked with the user's own
 * session: the console can do no more than the user's role lets the API
 * do, and it holds no rule of its own. Each link is a real page load; each
 * form is a real <form>, sent as JSON with the session's CSRF token. Text
 * from the API is only ever put into the page as text. */
"use strict";

(() => {
	const ROLES = { referrer: 1, viewer: 2, broker: 3, coordinator: 4 };
	const main = document.getElementById("main");
	const nav = document.getElementById("nav");
	const top = document.getElementById("top");
	let me = null; /* GET /v1/session: user, role, bank, bank_name, csrf_token */
	let observer = false;

	/* ---- building the page ---- */

	/* el("a", {href: "/x"}, "text", child...): attributes, then children
	 * (text or nodes; null and false are skipped). "on..." attributes
	 * take functions. */
	function el(tag, attrs, ...kids) {
		const node = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (v === null || v === undefined || v === false) continue;
			if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
			else if (k === "class") node.className = v;
			else node.setAttribute(k, v === true ? "" : v);
		}
		for (const kid of kids.flat(Infinity)) {
			if (kid === null || kid === undefined || kid === false) continue;
			node.append(kid instanceof Node ? kid : String(kid));
		}
		return node;
	}

	function link(href, text) {
		return el("a", { href }, text);
	}

	function screen(title, ...kids) {
		document.title = `${title}: ${me ? me.bank_name : "timebankd"}`;
		main.replaceChildren(el("h1", null, title), ...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
	}

	function notice(kind, ...kids) {
		return el("div", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status" }, ...kids);
	}

	function can(role) {
		return me !== null && me.role !== "referrer" && ROLES[me.role] >= ROLES[role];
	}

	/* Minutes as people say them: "2h", "1h 30m", "-45m". */
	function hours(minutes) {
		if (minutes === null || minutes === undefined) return "—";
		const sign = minutes < 0 ? "-" : "";
		const m = Math.abs(minutes);
		const h = Math.floor(m / 60);
		const r = m % 60;
		if (h === 0) return `${sign}${r}m`;
		return r === 0 ? `${sign}${h}h` : `${sign}${h}h ${r}m`;
	}

	function when(iso) {
		if (!iso) return "—";
		const d = new Date(iso);
		return isNaN(d) ? iso : d.toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" });
	}

	function today() {
		return new Date().toISOString().slice(0, 10);
	}

	function thisMonth() {
		return today().slice(0, 7);
	}

	function monthRange(month) {
		const [y, m] = month.split("-").map(Number);
		const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
		return { from: `${month}-01`, to: `${month}-${String(last).padStart(2, "0")}` };
	}

	function monthsBack(n) {
		const out = [];
		const d = new Date();
		d.setUTCDate(1);
		for (let i = 0; i < n; i++) {
			out.unshift(d.toISOString().slice(0, 7));
			d.setUTCMonth(d.getUTCMonth() - 1);
		}
		return out;
	}

	function state(text) {
		return el("span", { class: `state-${text}` }, String(text).replace(/_/g, " "));
	}

	/* A cell with nothing in it: a figure withheld (suppressed in a
	 * report) or a field not filled in. */
	function shown(v) {
		return v === null || v === undefined || v === "" ? el("span", { title: "none, or withheld" }, "—") : v;
	}

	/* A table: columns are [heading, row => cell, "num"?]. */
	function table(caption, columns, rows, empty) {
		if (!rows || rows.length === 0) return el("p", { class: "muted" }, empty || "None.");
		return el(
			"table",
			null,
			caption ? el("caption", { class: "muted" }, caption) : null,
			el("thead", null, el("tr", null, columns.map((c) => el("th", { scope: "col", class: c[2] || null }, c[0])))),
			el(
				"tbody",
				null,
				rows.map((row) => el("tr", null, columns.map((c) => el("td", { class: c[2] || null }, shown(c[1](row))))))
			)
		);
	}

	/* ---- files made in the browser ---- */

	function csvCell(v) {
		let s = v === null || v === undefined ? "" : String(v);
		/* A cell a spreadsheet would run as a formula is kept as text. */
		if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
		return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
	}

	function download(filename, type, text) {
		const url = URL.createObjectURL(new Blob([text], { type }));
		const a = el("a", { href: url, download: filename });
		document.body.append(a);
		a.click();
		a.remove();
		setTimeout(() => URL.revokeObjectURL(url), 1000);
	}

	function csvButton(filename, columns, rows) {
		return el(
			"button",
			{
				type: "button",
				class: "secondary",
				onclick: () =>
					download(
						filename,
						"text/csv",
						[columns.map((c) => csvCell(c[0])).join(",")]
							.concat(rows.map((r) => columns.map((c) => csvCell(c[1](r))).join(",")))
							.join("\r\n") + "\r\n"
					),
			},
			`Download ${filename}`
		);
	}

	/* ---- the API ---- */

	class ApiError extends Error {
		constructor(status, body) {
			const e = (body && body.error) || { code: "internal_error", message: `the daemon answered ${status}` };
			super(e.message);
			this.status = status;
			this.code = e.code;
		}
	}

	async function api(method, path, body) {
		const headers = { Accept: "application/json" };
		if (body !== undefined) headers["Content-Type"] = "application/json";
		if (method !== "GET" && me && me.csrf_token) headers["X-CSRF-Token"] = me.csrf_token;
		let res;
		try {
			res = await fetch(path, {
				method,
				headers,
				credentials: "same-origin",
				body: body === undefined ? undefined : JSON.stringify(body),
			});
		} catch (e) {
			throw new ApiError(0, { error: { code: "unreachable", message: "the bank's daemon cannot be reached; try again" } });
		}
		let data = null;
		try {
			data = await res.json();
		} catch (e) {
			data = null;
		}
		if (res.status === 401 && me !== null && path !== "/v1/session") {
			location.assign(`/console/sign-in?expired=1&next=${encodeURIComponent(location.pathname + location.search)}`);
			throw new ApiError(401, data);
		}
		if (!res.ok) throw new ApiError(res.status, data);
		return data;
	}

	const get = (path) => api("GET", path);
	const post = (path, body) => api("POST", path, body === undefined ? {} : body);

	/* Every page of a list, up to max items. */
	async function getAll(path, max) {
		const items = [];
		let cursor = null;
		do {
			const sep = path.includes("?") ? "&" : "?";
			const page = await get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
			items.push(...page.items);
			cursor = page.next_cursor;
		} while (cursor && items.length < (max || 5000));
		return items;
	}

	function q(params) {
		const s = new URLSearchParams();
		for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) s.set(k, v);
		const t = s.toString();
		return t ? `?${t}` : "";
	}

	const here = new URLSearchParams(location.search);

	/* ---- forms ---- */

	/* Which field an API error concerns: the field its message begins
	 * with, or the one its code names, or the one whose value it quotes
	 * (a member number). Otherwise the form's own line above the button. */
	const CODE_FIELD = {
		invalid_hours: "hours",
		invalid_category: "category",
		invalid_date: "performed_on",
		invalid_member_number: "number",
		duplicate_member_number: "number",
		same_member: "earner",
		duplicate_earner: "earners",
		invalid_reason: "reason",
		invalid_idempotency_key: null,
		invalid_area: "area",
		invalid_availability: "availability",
		invalid_visibility: "visibility",
		personal_details: "text",
		invalid_user_name: "name",
		duplicate_user_name: "name",
		duplicate_token_name: "name",
		invalid_token_name: "name",
		invalid_role: "role",
		invalid_org: "org",
		weak_password: "password",
		invalid_credentials: "password",
		invalid_setup_code: "code",
		safeguarding_check_required: "safeguarding_override",
		unknown_bank: "bank",
		not_exchanging: "bank",
		invalid_handle: "handle",
	};

	function fieldOf(form, err) {
		const names = [...form.querySelectorAll("[name]")].map((i) => i.name);
		const first = (err.message.match(/^([a-z_]+)/) || [])[1];
		if (first && names.includes(first)) return first;
		const byCode = CODE_FIELD[err.code];
		if (byCode && names.includes(byCode)) return byCode;
		for (const m of err.message.matchAll(/member (\d+)/g))
			for (const i of form.querySelectorAll("input[name]"))
				if (i.value.trim() === m[1] || i.value.trim().endsWith(`:${m[1]}`)) return i.name;
		return null;
	}

	function showError(form, err) {
		const name = fieldOf(form, err);
		const holder = name && form.querySelector(`[data-field="${name}"]`);
		if (holder) {
			holder.classList.add("invalid");
			holder.querySelector(".error").textContent = err.message;
			const input = holder.querySelector("input, select, textarea");
			input.setAttribute("aria-invalid", "true");
			input.focus();
		} else {
			const line = form.querySelector(".form-error");
			line.textContent = err.message;
			line.focus();
		}
	}

	function clearErrors(form) {
		for (const f of form.querySelectorAll(".field.invalid")) {
			f.classList.remove("invalid");
			f.querySelector(".error").textContent = "";
			f.querySelector("[aria-invalid]")?.removeAttribute("aria-invalid");
		}
		form.querySelector(".form-error").textContent = "";
	}

	let fieldSeq = 0;

	/* One labelled control: {name, label, type (text, number, date,
	 * select, textarea, checkbox, password), options [[value, label]],
	 * value, hint, required, autocomplete}. */
	function field(spec) {
		const id = `f${++fieldSeq}-${spec.name}`;
		const hintId = spec.hint ? `${id}-hint` : null;
		const errId = `${id}-error`;
		const common = {
			id,
			name: spec.name,
			"aria-describedby": [hintId, errId].filter(Boolean).join(" "),
			required: spec.required || null,
			autocomplete: spec.autocomplete || null,
		};
		let control;
		if (spec.type === "select") {
			control = el(
				"select",
				common,
				spec.options.map(([v, l]) => el("option", { value: v, selected: String(spec.value ?? "") === String(v) }, l))
			);
		} else if (spec.type === "textarea") {
			control = el("textarea", { ...common, rows: spec.rows || 3, cols: 40 }, spec.value || "");
		} else if (spec.type === "choices") {
			return el(
				"fieldset",
				{ class: "field", "data-field": spec.name, "aria-describedby": [hintId, errId].filter(Boolean).join(" ") },
				el("legend", null, spec.label, spec.required ? el("span", { class: "muted", "aria-hidden": "true" }, " (required)") : null),
				spec.hint ? el("p", { class: "hint", id: hintId }, spec.hint) : null,
				el("p", { class: "error", id: errId, "aria-live": "polite" }),
				spec.options.map(([v, l], i) =>
					el("div", null, el("input", { type: "checkbox", id: `${id}-${i}`, name: spec.name, value: v, "data-choice": "1" }), " ", el("label", { for: `${id}-${i}` }, l))
				)
			);
		} else if (spec.type === "checkbox") {
			control = el("input", { ...common, type: "checkbox", checked: !!spec.value });
		} else {
			control = el("input", {
				...common,
				type: spec.type || "text",
				value: spec.value ?? "",
				inputmode: spec.inputmode || null,
				size: spec.size || null,
			});
		}
		return el(
			"div",
			{ class: "field", "data-field": spec.name },
			el("label", { for: id }, spec.label, spec.required ? el("span", { class: "muted", "aria-hidden": "true" }, " (required)") : null),
			spec.hint ? el("p", { class: "hint", id: hintId }, spec.hint) : null,
			el("p", { class: "error", id: errId, "aria-live": "polite" }),
			control
		);
	}

	/* A form whose submit calls send(values, form). It carries an
	 * idempotency key made when it was drawn, the same for every retry,
	 * so that an exchange submitted twice is recorded once. */
	function form(opts) {
		const key = opts.idempotent ? crypto.randomUUID() : null;
		const button = el("button", { type: "submit", class: opts.danger ? "danger" : null }, opts.submit);
		const f = el(
			"form",
			{ class: opts.inline ? "inline" : "stack", novalidate: true, "aria-label": opts.label || null },
			opts.fields.filter(Boolean).map((s) => (s instanceof Node ? s : field(s))),
			el("p", { class: "form-error", tabindex: "-1", role: "alert" }),
			el("div", { class: "actions" }, button, opts.extra || null)
		);
		f.addEventListener("submit", async (ev) => {
			ev.preventDefault();
			clearErrors(f);
			const values = {};
			for (const input of f.querySelectorAll("[name]")) {
				if (input.dataset.choice) {
					values[input.name] = values[input.name] || [];
					if (input.checked) values[input.name].push(input.value);
				} else if (input.type === "checkbox") values[input.name] = input.checked;
				else if (input.value.trim() !== "") values[input.name] = input.value.trim();
			}
			if (key) values.idempotency_key = key;
			button.disabled = true;
			try {
				await opts.send(values, f);
			} catch (e) {
				if (!(e instanceof ApiError)) throw e;
				showError(f, e);
			} finally {
				button.disabled = false;
			}
		});
		return f;
	}

	/* A button that asks first: the question and a second button appear,
	 * and only that one acts. */
	function confirmButton(label, question, act, danger) {
		const holder = el("div", { class: "no-print" });
		const ask = el("button", { type: "button", class: danger ? "danger" : "secondary" }, label);
		ask.addEventListener("click", () => {
			const err = el("p", { class: "form-error", role: "alert" });
			const yes = el("button", { type: "button", class: danger ? "danger" : null }, `Yes, ${label.toLowerCase()}`);
			const no = el("button", { type: "button", class: "secondary" }, "Cancel");
			const box = el("div", { class: "confirm", role: "group", "aria-label": label }, el("p", null, question), err,
				el("div", { class: "actions" }, yes, no));
			no.addEventListener("click", () => {
				holder.replaceChildren(ask);
				ask.focus();
			});
			yes.addEventListener("click", async () => {
				yes.disabled = true;
				try {
					await act();
				} catch (e) {
					if (!(e instanceof ApiError)) throw e;
					err.textContent = e.message;
					yes.disabled = false;
				}
			});
			holder.replaceChildren(box);
			yes.focus();
		});
		holder.append(ask);
		return holder;
	}

	/* A button that writes at once, then shows where it leads; a refusal
	 * is shown beside it. */
	function actButton(label, path, back, secondary, body) {
		const err = el("span", { class: "form-error", role: "alert" });
		const b = el("button", { type: "button", class: secondary ? "secondary" : null }, label);
		b.addEventListener("click", async () => {
			b.disabled = true;
			try {
				await post(path, body);
				go(back);
			} catch (e) {
				if (!(e instanceof ApiError)) throw e;
				err.textContent = e.message;
				b.disabled = false;
			}
		});
		return el("span", null, b, " ", err);
	}

	/* A one-field form that writes, then shows where it leads. */
	function actForm(label, submit, path, back, spec) {
		return form({ label, inline: true, submit, fields: [spec], send: async (v) => { await post(path, v); go(back); } });
	}

	function go(path) {
		location.assign(path);
	}

	/* ---- the frame: who, where, and the way round ---- */

	function frame(current) {
		const signOut = el("button", { type: "button" }, "Sign out");
		signOut.addEventListener("click", async () => {
			await api("DELETE", "/v1/session").catch(() => null);
			go("/console/sign-in?signed_out=1");
		});
		top.replaceChildren(
			el("p", { class: "bank" }, me.bank_name || me.bank),
			el("div", { class: "who" }, el("span", null, `${me.user} (${me.role})`), signOut)
		);
		const items = observer
			? [
					["/console/network", "The network", "viewer"],
					["/console/books", "Books", "viewer"],
					["/console/federation", "Federation", "viewer"],
					["/console/accounts", "Accounts", "coordinator"],
			  ]
			: [
					["/console/today", "Today", "broker"],
					["/console/members", "Members", "broker"],
					["/console/exchanges/new", "Record an exchange", "broker"],
					["/console/exchanges", "Exchanges", "broker"],
					["/console/statements", "Statements", "broker"],
					["/console/directory", "Directory", "broker"],
					["/console/intake", "Intake", "broker"],
					["/console/referrals", "Referrals", "coordinator"],
					["/console/reports", "Reports", "viewer"],
					["/console/federation", "Federation", "viewer"],
					["/console/accounts", "Accounts", "coordinator"],
			  ];
		/* A referrer's account sees its organisation's referrals only. */
		const shown = me.role === "referrer" ? [["/console/intake", "Your referrals"]] : items.filter(([, , role]) => can(role));
		nav.replaceChildren(
			el(
				"ul",
				null,
				shown.map(([href, text]) =>
					el("li", null, el("a", { href, "aria-current": current === href ? "page" : null }, text))
				)
			)
		);
	}

	/* ---- signing in ---- */

	function signIn() {
		top.replaceChildren(el("p", { class: "bank" }, "timebankd"));
		nav.replaceChildren();
		const next = here.get("next");
		const intro = here.get("expired")
			? notice("warn", "Your session has ended. Sign in again to go on.")
			: here.get("signed_out")
			? notice("good", "You have signed out.")
			: null;
		screen(
			"Sign in",
			intro,
			form({
				label: "Sign in",
				submit: "Sign in",
				fields: [
					{ name: "name", label: "Account name", autocomplete: "username", required: true },
					{ name: "password", label: "Password", type: "password", autocomplete: "current-password", required: true },
				],
				send: async (v) => {
					await post("/v1/session", { name: v.name || "", password: v.password || "" });
					go(next && next.startsWith("/console/") ? next : "/console/");
				},
			}),
			el("p", { class: "muted" }, "A new account? Use the link or code your coordinator gave you: ", link("/console/setup", "set your password"), ".")
		);
	}

	/* The setup link carries the account and its code in the fragment
	 * (/console/setup#user=NAME&code=CODE), which no server logs. */
	function setup() {
		const given = new URLSearchParams(location.hash.slice(1));
		history.replaceState(null, "", "/console/setup");
		top.replaceChildren(el("p", { class: "bank" }, "timebankd"));
		nav.replaceChildren();
		screen(
			"Set your password",
			el("p", null, "Choose a password of at least 10 characters. A few ordinary words make a good one."),
			form({
				label: "Set your password",
				submit: "Set password",
				fields: [
					{ name: "name", label: "Account name", value: given.get("user") || "", autocomplete: "username", required: true },
					{ name: "code", label: "Setup code", value: given.get("code") || "", required: true, autocomplete: "one-time-code" },
					{ name: "password", label: "New password", type: "password", autocomplete: "new-password", required: true },
				],
				send: async (v) => {
					await post("/v1/users/setup", { name: v.name || "", code: v.code || "", password: v.password || "" });
					main.replaceChildren(el("h1", null, "Password set"), notice("good", "Your password is set. ", link("/console/sign-in", "Sign in"), "."));
				},
			})
		);
	}

	/* ---- Today ---- */

	async function todayScreen() {
		const [todo, peers, recent] = await Promise.all([
			get("/v1/todo"),
			get("/v1/peers"),
			get("/v1/exchanges?limit=200"),
		]);
		const pending = recent.items.filter((x) => x.state === "pending");
		const down = (peers.peers || []).filter((p) => p.state !== "established" && p.state !== "removed");
		const diverged = (peers.peers || []).filter((p) => p.diverged);
		/* What waits comes first; what does not is named in one line. */
		const sections = [
			["Incoming referrals overdue for contact", todo.intake_overdue, (r) => link(`/console/intake/${r.id}`, `Referral ${r.id}, received ${when(r.received_at)}`)],
			["Incoming referrals to follow up", todo.intake_waiting, (r) => link(`/console/intake/${r.id}`, `Referral ${r.id} (${r.state}), received ${when(r.received_at)}`)],
			["Claims from other banks", todo.claims, (c) => link(`/console/directory/claims#${c.claim}`, `Claim ${c.claim} from ${c.bank}: ${hours(c.minutes)}`)],
			["Contact requests", todo.contacts, (c) => link(`/console/directory/contacts#${c.contact}`, `Contact ${c.contact} from ${c.bank} about item ${c.handle}`)],
			["Members referred from other banks", todo.referrals, (r) => link("/console/referrals", `Referral ${r.referral} from ${r.bank} (${r.kind})`)],
			["Items waiting for review", todo.items_waiting, (i) => link("/console/directory/review", `${i.kind} ${i.id} (${i.handle})`)],
			["Members near their floor", todo.near_floor, (m) => link(`/console/members/${m.member}`, `Member ${m.member}: balance ${hours(m.balance_minutes)}, floor ${hours(m.floor_minutes)}`)],
			["Safeguarding checks running out", todo.checks_expiring, (c) => link(`/console/members/${c.member}`, `Member ${c.member}: ${c.kind}${c.expires_on ? ` until ${c.expires_on}` : ""}`)],
			["Members needing care who have gone quiet", todo.care_quiet, (m) => link(`/console/members/${m.member}`, `Member ${m.member}, last exchange ${m.last_exchange || "never"}`)],
			["Exchanges of members needing care, to review", todo.care_review ? [todo.care_review] : [], (n) => link("/console/care-review", `${n} exchanges not yet read`)],
			["Cross-bank exchanges pending", pending, (x) => link(`/console/exchanges/${x.id}`, `${x.id}: ${hours(x.minutes)}, ${x.payer_label} to ${x.earner_label}`)],
			["Peers down", down, (p) => link("/console/federation", `${p.peer}: ${p.state}${p.last_error ? `, ${p.last_error}` : ""}`)],
			["Peers diverged", diverged, (p) => link("/console/federation", `${p.peer}: ${p.diverged_reason || "diverged"}`)],
		];
		const waiting = sections.filter(([, rows]) => rows.length > 0);
		const quiet = sections.filter(([, rows]) => rows.length === 0).map(([title]) => title.toLowerCase());
		screen(
			"Today",
			waiting.length === 0 ? notice("good", "Nothing waits for you today.") : null,
			waiting.map(([title, rows, render]) => el("section", null, el("h2", null, `${title} (${title.startsWith("Exchanges of") ? rows[0] : rows.length})`), el("ul", null, rows.map((r) => el("li", null, render(r)))))),
			quiet.length ? el("p", { class: "muted" }, `Nothing waiting: ${quiet.join("; ")}.`) : null
		);
	}

	/* Exchanges of members who need extra care, for a broker to read. */
	async function careReviewScreen() {
		const review = await get("/v1/care-review");
		const byMember = new Map();
		for (const x of review.items) byMember.set(x.care_member, [...(byMember.get(x.care_member) || []), x]);
		screen(
			"Exchanges to review",
			el("p", null, "Exchanges of members who need extra care, not yet read by a broker."),
			byMember.size === 0 ? notice("good", "Every exchange has been read.") : null,
			[...byMember].map(([member, xs]) =>
				el(
					"section",
					null,
					el("h2", null, link(`/console/members/${member}`, `Member ${member}`)),
					table(null, [["Exchange", (x) => link(`/console/exchanges/${x.id}`, x.id)], ["Date", (x) => x.performed_on], ["From", (x) => x.payer_label], ["To", (x) => x.earner_label], ["Hours", (x) => hours(x.minutes), "num"], ["What", (x) => x.description || x.category], ["Recorded by", (x) => x.recorded_by]], xs),
					actButton("Read: mark as reviewed", `/v1/members/${member}/care-reviewed`, "/console/care-review", false, { up_to: Math.max(...xs.map((x) => x.id)) })
				)
			)
		);
	}

	/* ---- members ---- */

	async function membersScreen() {
		const search = here.get("q") || "";
		const status = here.get("status") || "";
		const cursor = here.get("cursor") || "";
		const page = await get(`/v1/members${q({ q: search, status, cursor, limit: 50 })}`);
		const filter = el(
			"form",
			{ class: "inline", method: "get", action: "/console/members", role: "search", "aria-label": "Find members" },
			field({ name: "q", label: "Name contains", value: search }),
			field({ name: "status", label: "Status", type: "select", value: status, options: [["", "any"], ["active", "active"], ["suspended", "suspended"], ["left", "left"]] }),
			el("div", { class: "actions" }, el("button", { type: "submit" }, "Find"))
		);
		screen(
			"Members",
			can("coordinator") ? el("p", null, el("a", { class: "button", href: "/console/members/new" }, "Add a member")) : null,
			filter,
			table(
				null,
				[
					["Number", (m) => link(`/console/members/${m.number}`, m.number), "num"],
					["Name", (m) => link(`/console/members/${m.number}`, m.name)],
					["Status", (m) => m.status],
					["Balance", (m) => hours(m.balance_minutes), "num"],
					["Joined", (m) => m.joined_on],
				],
				page.items,
				"No members match."
			),
			page.next_cursor ? el("p", null, link(`/console/members${q({ q: search, status, cursor: page.next_cursor })}`, "Next page")) : null
		);
	}

	const MEMBER_FIELDS = (m) => [
		{ name: "name", label: "Name", value: m.name, required: true, autocomplete: "off" },
		{ name: "kind", label: "Kind", type: "select", value: m.kind || "person", options: [["person", "person"], ["organisation", "organisation"]] },
		{ name: "email", label: "E-mail", type: "email", value: m.email, autocomplete: "off" },
		{ name: "phone", label: "Phone", type: "tel", value: m.phone, autocomplete: "off" },
		{ name: "address", label: "Address", type: "textarea", value: m.address },
		{ name: "skills", label: "Skills", value: m.skills },
		{ name: "needs", label: "Needs", value: m.needs },
		{ name: "availability", label: "Availability", value: m.availability },
		{ name: "notes", label: "Confidential notes", type: "textarea", value: m.notes, hint: "Seen by the bank's brokers and coordinators only." },
	];

	function memberNew() {
		screen(
			"Add a member",
			form({
				label: "Add a member",
				submit: "Add member",
				fields: [
					...MEMBER_FIELDS({}),
					{ name: "number", label: "Member number", inputmode: "numeric", hint: "Leave empty for the next free number." },
					{ name: "joined_on", label: "Joined on", type: "date", value: today() },
				],
				send: async (v) => {
					const m = await post("/v1/members", v);
					go(`/console/members/${m.number}?added=1`);
				},
			})
		);
	}

	async function memberEdit(number) {
		const m = await get(`/v1/members/${number}`);
		screen(
			`Edit member ${number}`,
			form({
				label: "Edit member",
				submit: "Save changes",
				fields: MEMBER_FIELDS(m),
				send: async (v) => {
					const change = {};
					for (const s of MEMBER_FIELDS(m))
						if ((v[s.name] ?? "") !== (m[s.name] ?? "")) change[s.name] = v[s.name] ?? null;
					if (Object.keys(change).length) await api("PATCH", `/v1/members/${number}`, change);
					go(`/console/members/${number}?saved=1`);
				},
				extra: link(`/console/members/${number}`, "Cancel"),
			})
		);
	}

	async function memberScreen(number) {
		const cursor = here.get("cursor") || "";
		const [m, bal, hist, offers, requests, checks, banks] = await Promise.all([
			get(`/v1/members/${number}`),
			get(`/v1/members/${number}/balance`),
			get(`/v1/members/${number}/history${q({ cursor, limit: 20 })}`),
			get(`/v1/offers?member=${number}&state=all`),
			get(`/v1/requests?member=${number}&state=all`),
			get(`/v1/members/${number}/checks`),
			can("coordinator") ? peerBanks() : [],
		]);
		const coordinator = can("coordinator");
		const status = (to, label) =>
			confirmButton(label, `${label}: member ${number}, ${m.name}?`, async () => {
				if (to === "left") await api("PATCH", `/v1/members/${number}`, { status: "left" });
				else await post(`/v1/members/${number}/${to === "active" ? "activate" : "suspend"}`);
				go(`/console/members/${number}?saved=1`);
			});
		const details = [
			["Kind", m.kind],
			["Status", m.status],
			["Joined", m.joined_on],
			["Left", m.left_on],
			["E-mail", m.email],
			["Phone", m.phone],
			["Address", m.address],
			["District", m.district],
			["Skills", m.skills],
			["Needs", m.needs],
			["Availability", m.availability],
			["Referred by", m.referred_by ? link(`/console/members/${m.referred_by}`, `member ${m.referred_by}`) : null],
		].filter(([, v]) => v !== null && v !== undefined && v !== "");
		screen(
			`${m.name} (member ${number})`,
			here.get("added") ? notice("good", `Member ${number} added.`) : null,
			here.get("saved") ? notice("good", "Saved.") : null,
			el(
				"ul",
				{ class: "figures", "aria-label": "Balance" },
				el("li", null, "Balance", el("span", { class: "value", "data-figure": "balance" }, hours(bal.balance_minutes))),
				el("li", null, "Pending", el("span", { class: "value", "data-figure": "pending" }, hours(bal.pending_minutes))),
				el("li", null, "Available to spend", el("span", { class: "value", "data-figure": "available" }, hours(bal.available_minutes))),
				el("li", null, "Floor", el("span", { class: "value" }, hours(bal.floor_minutes)))
			),
			el(
				"div",
				{ class: "actions" },
				m.status === "active" ? el("a", { class: "button", href: `/console/exchanges/new?payer=${number}` }, "Record an exchange") : null,
				el("a", { class: "button secondary", href: `/console/statements?member=${number}&month=${thisMonth()}` }, "Statement"),
				coordinator ? el("a", { class: "button secondary", href: `/console/members/${number}/edit` }, "Edit") : null,
				coordinator && m.status === "active" ? el("a", { class: "button secondary", href: `/console/grants/new?member=${number}` }, "Grant hours") : null
			),
			el("h2", null, "Details"),
			el("dl", null, details.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
			m.notes !== undefined ? [el("h2", null, "Confidential notes"), el("p", null, m.notes || "None.")] : null,
			el("h2", null, "History"),
			table(
				null,
				[
					["Date", (l) => l.performed_on],
					["Exchange", (l) => link(`/console/exchanges/${l.exchange}`, l.exchange)],
					["With", (l) => (l.other_name ? `${l.other_name} (${l.other_party})` : l.other_party)],
					["Category", (l) => l.category],
					["Description", (l) => l.description],
					["Hours", (l) => hours(l.minutes), "num"],
					["Balance after", (l) => hours(l.balance_after), "num"],
				],
				hist.items,
				"No exchanges yet."
			),
			hist.next_cursor ? el("p", null, link(`/console/members/${number}${q({ cursor: hist.next_cursor })}`, "Older")) : null,
			el("h2", null, "Offers and requests"),
			table(
				null,
				[
					["Kind", (i) => i.kind || "offer"],
					["Category", (i) => i.category],
					["Text", (i) => i.text],
					["State", (i) => i.state || (i.withdrawn_at ? "withdrawn" : "active")],
					["Shared", (i) => i.visibility],
				],
				[...offers.items.map((i) => ({ ...i, kind: "offer" })), ...requests.items.map((i) => ({ ...i, kind: "request" }))],
				"None."
			),
			el("h2", null, "Safeguarding checks"),
			el("p", null, checks.valid ? "A valid check is held." : "No valid check is held.", checks.needs_care ? " This member needs extra care." : ""),
			table(null, [["Kind", (c) => c.kind], ["Reference", (c) => c.reference], ["Checked", (c) => c.checked_on], ["Expires", (c) => c.expires_on]], checks.items, "No checks recorded."),
			m.status === "active"
				? el(
						"details",
						null,
						el("summary", null, "Record a check"),
						form({
							label: "Record a safeguarding check",
							submit: "Record check",
							fields: [
								{ name: "kind", label: "Kind", type: "select", options: [["dbs-basic", "DBS basic"], ["dbs-standard", "DBS standard"], ["dbs-enhanced", "DBS enhanced"], ["dbs-enhanced-barred", "DBS enhanced with barred lists"], ["pvg", "PVG (Scotland)"], ["other", "other"]] },
								{ name: "reference", label: "Certificate number", required: true },
								{ name: "checked_on", label: "Checked on", type: "date", required: true },
								{ name: "expires_on", label: "Renew by", type: "date", required: true },
							],
							send: async (v) => {
								await post(`/v1/members/${number}/checks`, v);
								go(`/console/members/${number}?saved=1`);
							},
						})
				  )
				: null,
			coordinator
				? [
						m.status === "active" && banks.length
							? [el("h2", null, "Refer to another bank"), el("details", null, el("summary", null, "Refer this member"), referralForm(number, banks))]
							: null,
						el("h2", null, "Status, export and erasure"),
						el(
							"div",
							{ class: "actions" },
							m.status !== "active" ? status("active", "Activate") : status("suspended", "Suspend"),
							m.status !== "left" ? status("left", "Mark as left") : null,
							confirmButton("Export", `Download everything held about member ${number}, ${m.name}? Keep the file safe: it holds personal details.`, async () => {
								const all = await get(`/v1/members/${number}/export`);
								download(`member-${number}.json`, "application/json", JSON.stringify(all, null, 2));
							}),
							m.status === "left" && !m.erased
								? confirmButton(
										"Erase",
										`Erase member ${number}, ${m.name}? Their personal details are cleared for good; the ledger keeps the hours.`,
										async () => {
											await post(`/v1/members/${number}/erase`, {});
											go(`/console/members/${number}?saved=1`);
										},
										true
								  )
								: null
						),
				  ]
				: null
		);
	}

	/* ---- exchanges ---- */

	async function peerBanks() {
		try {
			const p = await get("/v1/peers");
			return (p.peers || []).filter((x) => x.kind !== "observer" && x.state !== "removed").map((x) => x.peer);
		} catch (e) {
			return [];
		}
	}

	async function categoryOptions() {
		const c = await get("/v1/directory/categories");
		return [["", "choose a category"], ...c.items.map((i) => [i.code, i.label])];
	}

	async function exchangeNew() {
		const [banks, categories] = await Promise.all([peerBanks(), categoryOptions()]);
		const result = el("div", { "aria-live": "polite" });
		const common = [
			{ name: "hours", label: "Hours", required: true, hint: "Like 2, 1.5, 1h30m or 90m.", size: 8 },
			{ name: "category", label: "Category", type: "select", options: categories, required: true },
			{ name: "description", label: "What was done", type: "textarea" },
			{ name: "performed_on", label: "Date", type: "date", value: today() },
		];
		screen(
			"Record an exchange",
			el("p", null, "Also: ", link("/console/exchanges/group", "a group session"), can("coordinator") ? [", ", link("/console/grants/new", "a grant from the community account")] : null, "."),
			result,
			form({
				label: "Record an exchange",
				submit: "Record exchange",
				idempotent: true,
				fields: [
					{ name: "payer", label: "Member who received help (pays)", value: here.get("payer") || "", inputmode: "numeric", required: true, size: 10 },
					{
						name: "earner_bank",
						label: "Helper's bank",
						type: "select",
						options: [["", `this bank (${me.bank_name})`], ...banks.map((b) => [b, b])],
					},
					{ name: "earner", label: "Member who helped (earns)", inputmode: "numeric", required: true, size: 10, hint: "Their member number at their bank." },
					...common,
					can("coordinator")
						? { name: "safeguarding_override", label: "Safeguarding override", type: "textarea", rows: 2, hint: "Only where the helper has no valid check this help needs: why it may go ahead. Recorded with your name." }
						: null,
				],
				send: async (v, f) => {
					const body = { ...v };
					delete body.earner_bank;
					if (v.earner_bank && v.earner) body.earner = `${v.earner_bank}:${v.earner}`;
					const x = await post("/v1/exchanges", body);
					go(`/console/exchanges/${x.id}?recorded=1`);
				},
			})
		);
	}

	async function groupNew() {
		const categories = await categoryOptions();
		screen(
			"Record a group session",
			el("p", null, "One activity, several helpers: each earns the hours, all or none are recorded."),
			form({
				label: "Record a group session",
				submit: "Record group session",
				idempotent: true,
				fields: [
					{ name: "payer", label: "Member or organisation who received the help (pays)", inputmode: "numeric", required: true },
					{ name: "earners", label: "Helpers", required: true, hint: "Member numbers, separated by commas: 4, 7, 12." },
					{ name: "hours", label: "Hours for each helper", required: true },
					{ name: "category", label: "Category", type: "select", options: categories, required: true },
					{ name: "description", label: "What was done", type: "textarea" },
					{ name: "performed_on", label: "Date", type: "date", value: today() },
				],
				send: async (v) => {
					const body = { ...v, earners: (v.earners || "").split(/[ ,]+/).filter(Boolean).map((n) => (/^\d+$/.test(n) ? Number(n) : n)) };
					await post("/v1/exchanges/group", body);
					go(`/console/exchanges?recorded=1`);
				},
			})
		);
	}

	function grantNew() {
		screen(
			"Grant hours",
			el("p", null, "Hours from the community account: a welcome, or thanks for work for the bank itself."),
			form({
				label: "Grant hours",
				submit: "Grant hours",
				idempotent: true,
				fields: [
					{ name: "member", label: "Member", value: here.get("member") || "", inputmode: "numeric", required: true },
					{ name: "hours", label: "Hours", required: true },
					{ name: "reason", label: "Reason", required: true },
					{ name: "description", label: "Description", type: "textarea" },
					{ name: "performed_on", label: "Date", type: "date", value: today() },
				],
				send: async (v) => {
					const g = await post("/v1/grants", v);
					go(`/console/exchanges/${g.id}?recorded=1`);
				},
			})
		);
	}

	async function exchangesScreen() {
		const member = here.get("member") || "";
		const cursor = here.get("cursor") || "";
		const page = await get(`/v1/exchanges${q({ member, cursor, limit: 50 })}`);
		screen(
			"Exchanges",
			here.get("recorded") ? notice("good", "Recorded.") : null,
			el("p", null, el("a", { class: "button", href: "/console/exchanges/new" }, "Record an exchange")),
			el(
				"form",
				{ class: "inline", method: "get", action: "/console/exchanges", role: "search", "aria-label": "Exchanges of one member" },
				field({ name: "member", label: "Member number", value: member, inputmode: "numeric" }),
				el("div", { class: "actions" }, el("button", { type: "submit" }, "Show"))
			),
			table(
				null,
				[
					["Exchange", (x) => link(`/console/exchanges/${x.id}`, x.id)],
					["Date", (x) => x.performed_on],
					["Kind", (x) => x.kind],
					["From (pays)", (x) => x.payer_label],
					["To (earns)", (x) => x.earner_label],
					["Hours", (x) => hours(x.minutes), "num"],
					["Category", (x) => x.category],
					["State", (x) => state(x.reversed_by ? "reversed" : x.state)],
				],
				page.items,
				"No exchanges."
			),
			page.next_cursor ? el("p", null, link(`/console/exchanges${q({ member, cursor: page.next_cursor })}`, "Older")) : null
		);
	}

	/* id: a number, or a cross-bank id (colchester:41), as the route's
	 * pattern let through; it goes into the API's path as it is. */
	async function exchangeScreen(id) {
		const x = await get(`/v1/exchanges/${id}`);
		const rows = [
			["State", state(x.state)],
			["Kind", x.kind],
			["Pays (received help)", x.payer_label || x.payer],
			["Earns (helped)", x.earner_label || x.earner],
			["Hours", hours(x.minutes)],
			["Category", x.category],
			["Description", x.description],
			["Date", x.performed_on],
			["Reason", x.reason],
			["Recorded by", x.recorded_by],
			["Recorded at", when(x.created_at)],
			["Reverses", x.reverses ? link(`/console/exchanges/${x.reverses}`, x.reverses) : null],
			["Reversed by", x.reversed_by ? link(`/console/exchanges/${x.reversed_by}`, x.reversed_by) : null],
		].filter(([, v]) => v !== null && v !== undefined && v !== "");
		const reversible = can("coordinator") && !x.reversed_by && (x.kind === "exchange" || x.kind === "grant" || String(id).includes(":")) && x.state === "settled";
		screen(
			`Exchange ${x.id}`,
			here.get("recorded") ? notice("good", x.state === "pending" ? "Recorded: waiting for the other bank's answer. Reload to see it settle." : "Recorded.") : null,
			here.get("reversed") ? notice("good", "Reversed.") : null,
			el("dl", null, rows.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])),
			reversible
				? [
						el("h2", null, "Reverse this exchange"),
						el("p", null, "A reversal is a new transfer back; this exchange stays as it was."),
						form({
							label: "Reverse this exchange",
							submit: "Reverse exchange",
							danger: true,
							idempotent: true,
							fields: [{ name: "reason", label: "Reason", required: true }],
							send: async (v) => {
								const r = await post(`/v1/exchanges/${id}/reverse`, v);
								go(`/console/exchanges/${r.id || id}?reversed=1`);
							},
						}),
				  ]
				: null
		);
	}

	/* ---- statements ---- */

	function statementArticle(s) {
		return el(
			"article",
			{ class: "statement", "aria-label": `Statement of member ${s.member.number}` },
			el("h2", null, `${s.bank.name}: statement`),
			el("p", null, el("strong", null, `${s.member.name} (member ${s.member.number})`), el("br"), `${s.from} to ${s.to}`),
			s.member.address ? el("p", { class: "address" }, s.member.address) : null,
			el(
				"table",
				null,
				el("thead", null, el("tr", null, ["Date", "With", "Description", "In", "Out", "Balance"].map((h, i) => el("th", { scope: "col", class: i >= 3 ? "num" : null }, h)))),
				el(
					"tbody",
					null,
					el("tr", null, el("td", { colspan: 5 }, "Opening balance"), el("td", { class: "num" }, hours(s.opening_minutes))),
					s.lines.map((l) =>
						el(
							"tr",
							null,
							el("td", null, l.date),
							el("td", null, l.other_party),
							el("td", null, l.description || l.category),
							el("td", { class: "num" }, l.minutes > 0 ? hours(l.minutes) : ""),
							el("td", { class: "num" }, l.minutes < 0 ? hours(-l.minutes) : ""),
							el("td", { class: "num" }, hours(l.balance_minutes))
						)
					),
					el(
						"tr",
						null,
						el("th", { scope: "row", colspan: 3 }, "Totals, and closing balance"),
						el("td", { class: "num" }, hours(s.in_minutes)),
						el("td", { class: "num" }, hours(s.out_minutes)),
						el("td", { class: "num", "data-figure": "closing" }, hours(s.closing_minutes))
					)
				)
			)
		);
	}

	const STATEMENT_CSV = [
		["member", (r) => r.member],
		["name", (r) => r.name],
		["date", (r) => r.date],
		["other_party", (r) => r.other_party],
		["category", (r) => r.category],
		["description", (r) => r.description],
		["minutes", (r) => r.minutes],
		["balance_minutes", (r) => r.balance_minutes],
	];

	function statementRows(s) {
		return [
			{ member: s.member.number, name: s.member.name, date: s.from, other_party: "opening balance", minutes: 0, balance_minutes: s.opening_minutes },
			...s.lines.map((l) => ({ member: s.member.number, name: s.member.name, ...l })),
		];
	}

	async function statementsScreen() {
		const member = here.get("member") || "";
		const month = here.get("month") || "";
		const from = here.get("from") || (month ? monthRange(month).from : "");
		const to = here.get("to") || (month ? monthRange(month).to : "");
		const chooser = el(
			"form",
			{ class: "inline", method: "get", action: "/console/statements", "aria-label": "Choose a statement" },
			field({ name: "member", label: "Member number", value: member, inputmode: "numeric", hint: "Empty: every active member." }),
			field({ name: "month", label: "Month", type: "month", value: month || thisMonth() }),
			el("div", { class: "actions" }, el("button", { type: "submit" }, "Show"))
		);
		if (!from) {
			screen("Statements", chooser);
			return;
		}
		let statements;
		if (member) {
			statements = [await get(`/v1/members/${encodeURIComponent(member)}/statement${q({ from, to })}`)];
		} else {
			const members = await getAll("/v1/members?status=active");
			statements = [];
			for (let i = 0; i < members.length; i += 8)
				statements.push(...(await Promise.all(members.slice(i, i + 8).map((m) => get(`/v1/members/${m.number}/statement${q({ from, to })}`)))));
		}
		const name = member ? `statement-${from.slice(0, 7)}-${member}` : `statements-${from.slice(0, 7)}`;
		screen(
			member ? "Statement" : `Statements for ${from.slice(0, 7)}`,
			chooser,
			el(
				"div",
				{ class: "actions" },
				el("button", { type: "button", onclick: () => window.print() }, member ? "Print this statement" : `Print all ${statements.length}, one to a page`),
				csvButton(`${name}.csv`, STATEMENT_CSV, statements.flatMap(statementRows))
			),
			statements.map(statementArticle)
		);
	}

	/* What passes between banks (claims, contacts, referrals): what was
	 * asked of us and waits, and all that we asked. */
	function bothWays(path) {
		return Promise.all([get(`${path}?direction=incoming`), get(`${path}?direction=outgoing&state=all`)]);
	}

	/* ---- the directory ---- */

	async function directoryScreen() {
		const params = { q: here.get("q") || "", category: here.get("category") || "", area: here.get("area") || "", kind: here.get("kind") || "", bank: here.get("bank") || "" };
		const [categories, banks] = await Promise.all([categoryOptions(), peerBanks()]);
		const searched = Object.values(params).some((v) => v);
		const results = searched ? await get(`/v1/directory${q({ ...params, limit: 50 })}`) : null;
		const ask = (item) =>
			form({
				label: `Ask ${item.bank} about item ${item.handle}`,
				inline: true,
				submit: "Ask for contact",
				fields: [
					{ name: "for", label: "For our member", inputmode: "numeric", size: 6, required: true },
					{ name: "message", label: "Message to their broker", size: 24, required: true },
				],
				send: async (v) => {
					const c = await post("/v1/contacts", { handle: item.handle, bank: item.bank, ...v });
					go(`/console/directory/contacts?direction=outgoing&asked=${encodeURIComponent(c.id || c.contact_id || "")}`);
				},
			});
		screen(
			"Directory",
			el("p", null, link("/console/directory/claims", "Claims"), " · ", link("/console/directory/contacts", "Contact requests"), " · ", link("/console/directory/review", "Items waiting for review")),
			el(
				"form",
				{ class: "inline", method: "get", action: "/console/directory", role: "search", "aria-label": "Search the federation's directory" },
				field({ name: "q", label: "Words", value: params.q }),
				field({ name: "category", label: "Category", type: "select", options: [["", "any"], ...categories.slice(1)], value: params.category }),
				field({ name: "area", label: "Area", value: params.area, size: 6, hint: "A postcode district or its start." }),
				field({ name: "kind", label: "Kind", type: "select", value: params.kind, options: [["", "offers and requests"], ["offer", "offers"], ["request", "requests"]] }),
				field({ name: "bank", label: "Bank", type: "select", value: params.bank, options: [["", "any"], [me.bank, me.bank], ...banks.map((b) => [b, b])] }),
				el("div", { class: "actions" }, el("button", { type: "submit" }, "Search"))
			),
			results && results.broad ? el("p", { role: "status" }, "More items match these words than are ranked; the best of the first 2,000 are shown. Add a word, a category or an area to narrow the search.") : null,
			results
				? table(
						`${results.items.length} found`,
						[
							["Bank", (i) => i.bank],
							["Kind", (i) => i.kind],
							["Category", (i) => i.category],
							["Text", (i) => i.text],
							["Area", (i) => i.area],
							["Availability", (i) => i.availability],
							["", (i) => (i.bank === me.bank ? (i.member ? link(`/console/members/${i.member}`, `our member ${i.member}`) : "ours") : ask(i))],
						],
						results.items,
						"Nothing matches."
				  )
				: null
		);
	}

	async function claimsScreen() {
		const [incoming, outgoing] = await bothWays("/v1/claims");
		screen(
			"Claims",
			el("p", null, "Hours another bank's member asks of one of ours, for help given."),
			el("h2", null, "Waiting for our answer"),
			table(
				null,
				[
					["Claim", (c) => el("span", { id: c.id }, c.id)],
					["Our member (pays)", (c) => link(`/console/members/${c.payer}`, c.payer)],
					["Their member", (c) => c.earner_label || c.earner],
					["Hours", (c) => hours(c.minutes), "num"],
					["Category", (c) => c.category],
					["Message", (c) => c.message],
					[
						"Answer",
						(c) =>
							el(
								"div",
								null,
								actButton("Approve", `/v1/claims/${encodeURIComponent(c.id)}/approve`, "/console/directory/claims"),
								actForm(`Decline claim ${c.id}`, "Decline", `/v1/claims/${encodeURIComponent(c.id)}/decline`, "/console/directory/claims", { name: "reason", label: "Reason", required: true, size: 18 })
							),
					],
				],
				incoming.items,
				"No claims waiting."
			),
			el("h2", null, "Our claims on other banks"),
			table(null, [["Claim", (c) => c.id], ["Our member (earns)", (c) => c.earner], ["Their member", (c) => c.payer_label || c.payer], ["Hours", (c) => hours(c.minutes), "num"], ["State", (c) => state(c.state)], ["Reason", (c) => c.reason]], outgoing.items, "None.")
		);
	}

	async function contactsScreen() {
		const [incoming, outgoing] = await bothWays("/v1/contacts");
		screen(
			"Contact requests",
			here.get("asked") !== null ? notice("good", "Asked. The other bank's broker will answer.") : null,
			el("h2", null, "Asked of us"),
			table(
				null,
				[
					["Request", (c) => el("span", { id: c.id }, c.id)],
					["From", (c) => c.bank],
					["About item", (c) => c.handle],
					["Message", (c) => c.message],
					[
						"Answer",
						(c) =>
							el(
								"div",
								null,
								actForm(`Accept contact ${c.id}`, "Accept", `/v1/contacts/${encodeURIComponent(c.id)}/accept`, "/console/directory/contacts", { name: "message", label: "How they will meet", required: true, size: 20 }),
								actButton("Decline", `/v1/contacts/${encodeURIComponent(c.id)}/decline`, "/console/directory/contacts", true)
							),
					],
				],
				incoming.items,
				"No contact requests waiting."
			),
			el("h2", null, "Asked by us"),
			table(null, [["Request", (c) => c.id], ["To", (c) => c.bank], ["Item", (c) => c.handle], ["For member", (c) => c.for || c.member], ["State", (c) => state(c.state)], ["Answer", (c) => c.answer]], outgoing.items, "None.")
		);
	}

	async function reviewScreen() {
		const [offers, requests] = await Promise.all([get("/v1/offers?state=waiting"), get("/v1/requests?state=waiting")]);
		const items = [...offers.items.map((i) => ({ ...i, kind: "offer", path: "offers" })), ...requests.items.map((i) => ({ ...i, kind: "request", path: "requests" }))];
		screen(
			"Items waiting for review",
			el("p", null, "A broker reads each item before it is shared with the federation."),
			table(
				null,
				[
					["Item", (i) => `${i.kind} ${i.id}`],
					["Member", (i) => link(`/console/members/${i.member}`, i.member)],
					["Category", (i) => i.category],
					["Text", (i) => i.text],
					["Area", (i) => i.area],
					["", (i) => actButton("Approve and share", `/v1/${i.path}/${i.id}/approve`, "/console/directory/review", false, { version: i.version })],
				],
				items,
				"Nothing is waiting."
			)
		);
	}

	/* ---- referrals between banks ---- */

	async function referralsScreen() {
		const [incoming, outgoing] = await bothWays("/v1/referrals");
		const back = "/console/referrals";
		screen(
			"Members moving or introduced",
			here.get("sent") ? notice("good", "Referred. The other bank's coordinator will answer.") : null,
			el("p", null, "Referrals of members between banks, made with the member's consent. Refer a member from their page."),
			el("h2", null, "Referred to us"),
			table(
				null,
				[
					["Referral", (r) => r.id],
					["From", (r) => r.peer],
					["Kind", (r) => r.kind],
					["Shared with us", (r) => (r.details ? Object.entries(r.details).map(([k, v]) => `${k}: ${v}`).join("; ") : "")],
					["Hours", (r) => (r.kind === "move" ? hours(r.balance_minutes) : "")],
					["Expires", (r) => when(r.expires_at)],
					[
						"Answer",
						(r) =>
							el(
								"div",
								null,
								actForm(`Accept referral ${r.id}`, "Accept", `/v1/referrals/${encodeURIComponent(r.id)}/accept`, back, { name: "message", label: "Message back", size: 18 }),
								actForm(`Decline referral ${r.id}`, "Decline", `/v1/referrals/${encodeURIComponent(r.id)}/decline`, back, { name: "reason", label: "Reason", required: true, size: 18 })
							),
					],
				],
				incoming.items,
				"No referrals waiting."
			),
			el("h2", null, "Referred by us"),
			table(
				null,
				[
					["Referral", (r) => r.id],
					["Member", (r) => (r.member ? link(`/console/members/${r.member}`, r.member) : "")],
					["To", (r) => r.peer],
					["Kind", (r) => r.kind],
					["State", (r) => state(r.state)],
					["Answer", (r) => r.answer || r.refusal],
					["", (r) => (r.state === "open" ? actButton("Withdraw", `/v1/referrals/${encodeURIComponent(r.id)}/withdraw`, back, true) : "")],
				],
				outgoing.items,
				"None."
			)
		);
	}

	/* A member's referral to another bank: what they agreed to share, and how. */
	function referralForm(number, banks) {
		return form({
			label: "Refer to another bank",
			submit: "Refer",
			idempotent: true,
			fields: [
				{ name: "bank", label: "To the bank", type: "select", options: banks.map((b) => [b, b]), required: true },
				{ name: "kind", label: "Kind", type: "select", options: [["introduce", "introduce them (they stay a member here)"], ["move", "they move there, with their hours"]] },
				{
					name: "share",
					label: "What they agreed to share",
					type: "choices",
					required: true,
					options: [["name", "name"], ["phone", "phone"], ["email", "e-mail"], ["address", "address"], ["skills", "skills"], ["needs", "needs"], ["availability", "availability"], ["district", "district"], ["record", "their record of exchanges"]],
				},
				{ name: "consent", label: "How they agreed", type: "select", options: [["in person", "in person"], ["by phone", "by phone"], ["in writing", "in writing"]] },
				{ name: "reason", label: "Why", type: "textarea" },
			],
			send: async (v) => {
				await post("/v1/referrals", { ...v, member: number });
				go("/console/referrals?sent=1");
			},
		});
	}

	/* ---- intake ---- */

	async function intakeScreen() {
		const st = here.get("state") || "";
		const page = await get(`/v1/intake${q({ state: st, limit: 100 })}`);
		screen(
			me.role === "referrer" ? "Your referrals" : "Intake: people referred in",
			el("p", null, el("a", { class: "button", href: "/console/intake/new" }, "Refer someone")),
			el(
				"form",
				{ class: "inline", method: "get", action: "/console/intake", "aria-label": "Filter referrals" },
				field({ name: "state", label: "State", type: "select", value: st, options: [["", "any"], ...["received", "contacted", "joined", "declined", "unreachable", "withdrawn"].map((s) => [s, s])] }),
				el("div", { class: "actions" }, el("button", { type: "submit" }, "Show"))
			),
			table(
				null,
				[
					["Referral", (i) => link(`/console/intake/${i.id}`, i.id)],
					["Name", (i) => i.name || "—"],
					["From", (i) => i.org_name || i.org],
					["State", (i) => state(i.state)],
					["Received", (i) => when(i.received_at)],
					["Overdue", (i) => (i.overdue ? "yes" : "")],
				],
				page.items,
				"No referrals."
			)
		);
	}

	function intakeNew() {
		screen(
			"Refer someone",
			form({
				label: "Refer someone",
				submit: "Send referral",
				idempotent: true,
				fields: [
					me.role === "referrer" ? null : { name: "org", label: "Referring organisation (member number)", inputmode: "numeric", required: true },
					{ name: "name", label: "Name of the person referred", required: true },
					{ name: "phone", label: "Phone", type: "tel" },
					{ name: "email", label: "E-mail", type: "email" },
					{ name: "address", label: "Address", type: "textarea" },
					{
						name: "reasons",
						label: "Why they are referred",
						type: "choices",
						required: true,
						options: [
							["isolation", "isolation or loneliness"],
							["low-mood", "low mood"],
							["long-term-condition", "a long-term condition"],
							["carer", "a carer"],
							["bereavement", "bereavement"],
							["recently-discharged", "recently out of hospital"],
							["other", "other"],
						],
					},
					{ name: "referrer_name", label: "Your name" },
					{ name: "referrer_contact", label: "How to reach you" },
					{ name: "consent_contact", label: "They agree to be contacted", type: "checkbox" },
					{ name: "consent_outcomes", label: "They agree that you hear how it went", type: "checkbox" },
				].filter(Boolean),
				send: async (v) => {
					const r = await post("/v1/intake", v);
					go(`/console/intake/${r.id}`);
				},
			})
		);
	}

	async function intakeOne(id) {
		const r = await get(`/v1/intake/${id}`);
		const move = (to, label, fields) =>
			form({
				label: `${label}: referral ${id}`,
				inline: true,
				submit: label,
				fields: fields || [],
				send: async (v) => {
					await post(`/v1/intake/${id}/${to}`, v);
					go(`/console/intake/${id}`);
				},
			});
		const open = r.state === "received" || r.state === "contacted";
		screen(
			`Referral ${id}`,
			el(
				"dl",
				null,
				[
					["State", state(r.state)],
					["Name", r.name],
					["Phone", r.phone],
					["E-mail", r.email],
					["Reasons", (r.reasons || []).join(", ")],
					["Received", when(r.received_at)],
					["Contacted", when(r.contacted_at)],
					["Joined", r.joined_on],
					["Member", r.member ? link(`/console/members/${r.member}`, r.member) : null],
					["Overdue", r.overdue ? "yes" : null],
				]
					.filter(([, v]) => v !== null && v !== undefined && v !== "" && v !== "—")
					.map(([k, v]) => [el("dt", null, k), el("dd", null, v)])
			),
			open && can("broker")
				? el(
						"div",
						{ class: "actions" },
						r.state === "received" ? move("contacted", "Contacted") : null,
						move("joined", "Joined"),
						move("declined", "Declined", [{ name: "reason", label: "Their reason", required: true, size: 20 }]),
						move("unreachable", "Unreachable")
				  )
				: null,
			open ? move("withdrawn", "Withdrawn") : null,
			el("h2", null, "History"),
			table(null, [["State", (h) => h.state], ["At", (h) => when(h.at)], ["By", (h) => h.by]], r.history, "None.")
		);
	}

	/* ---- reports ---- */

	function chartOf(canvasLabel, config) {
		const canvas = el("canvas", { role: "img", "aria-label": canvasLabel });
		const box = el("div", { class: "chart" }, canvas);
		if (window.Chart) {
			config.options = { responsive: true, maintainAspectRatio: false, animation: false, ...(config.options || {}) };
			requestAnimationFrame(() => new window.Chart(canvas, config));
		}
		return box;
	}

	const PALETTE = ["#0b4f6c", "#c2185b", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037", "#455a64", "#ad1457", "#283593"];

	/* Months by category as a stacked bar chart, of rows {month, category, minutes}. */
	function stackedChart(label, rows, seriesKey) {
		const months = [...new Set(rows.map((r) => r.month))].sort();
		const series = [...new Set(rows.map((r) => r[seriesKey]))].sort();
		return chartOf(label, {
			type: "bar",
			data: {
				labels: months,
				datasets: series.map((s, i) => ({
					label: s,
					backgroundColor: PALETTE[i % PALETTE.length],
					data: months.map((m) => rows.filter((r) => r.month === m && r[seriesKey] === s).reduce((a, r) => a + r.minutes, 0) / 60),
				})),
			},
			options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "hours" } } } },
		});
	}

	function reportSection(title, filename, columns, rows) {
		return el("section", null, el("h2", null, title), table(null, columns, rows, "Nothing in this period."), rows && rows.length ? csvButton(filename, columns, rows) : null);
	}

	async function reportsScreen() {
		const from = here.get("from") || `${monthsBack(12)[0]}-01`;
		const to = here.get("to") || today();
		const period = q({ from, to });
		const [cats, active, joined, referrers, intake] = await Promise.all([
			get(`/v1/reports/categories${period}`),
			get("/v1/reports/active"),
			get(`/v1/reports/new-members${period}`),
			get(`/v1/reports/referrals${period}`),
			get(`/v1/reports/intake${period}`).catch(() => null),
		]);
		screen(
			"Reports",
			el(
				"form",
				{ class: "inline", method: "get", action: "/console/reports", "aria-label": "Period" },
				field({ name: "from", label: "From", type: "date", value: from }),
				field({ name: "to", label: "To", type: "date", value: to }),
				el("div", { class: "actions" }, el("button", { type: "submit" }, "Show"))
			),
			el("h2", null, "Hours per month by category"),
			cats.rows.length ? stackedChart("Hours exchanged per month, by category", cats.rows, "category") : el("p", { class: "muted" }, "No exchanges in this period."),
			reportSection("Hours by month and category", `categories-${from}-${to}.csv`, [["month", (r) => r.month], ["category", (r) => r.category], ["exchanges", (r) => r.exchanges, "num"], ["hours", (r) => hours(r.minutes), "num"], ["minutes", (r) => r.minutes, "num"]], cats.rows),
			reportSection(`Active members (last ${active.days} days to ${active.as_of})`, `active-${active.as_of}.csv`, [["registered_members", (r) => r.registered_members, "num"], ["active_members", (r) => r.active_members, "num"], ["active_organisations", (r) => r.active_organisations, "num"]], active.rows),
			reportSection("New members by month", `new-members-${from}-${to}.csv`, [["month", (r) => r.month], ["new_members", (r) => r.new_members, "num"], ["new_organisations", (r) => r.new_organisations, "num"]], joined.rows),
			reportSection("By referring organisation", `referrals-${from}-${to}.csv`, [["source", (r) => r.source], ["members", (r) => r.members, "num"], ["new_members", (r) => r.new_members, "num"], ["minutes_given", (r) => r.minutes_given, "num"], ["minutes_received", (r) => r.minutes_received, "num"]], referrers.rows),
			intake
				? reportSection(
						"Referrals in, for commissioners (disclosure-controlled)",
						`intake-${from}-${to}.csv`,
						[["organisation", (r) => r.name || r.org || "all"], ["received", (r) => r.received, "num"], ["contacted in time", (r) => r.contacted_in_time, "num"], ["joined", (r) => r.joined, "num"], ["declined", (r) => r.declined, "num"], ["active at 3 months", (r) => r.active_3_months, "num"]],
						[...(intake.organisations || []), { ...intake.total, name: "total" }]
				  )
				: null
		);
	}

	/* ---- federation ---- */

	async function federationScreen() {
		const [peers, audit, fed, backup] = await Promise.all([get("/v1/peers"), get("/v1/audit"), get("/v1/audit/federation"), get("/v1/backup")]);
		const peerCols = [
			["Peer", (p) => p.peer],
			["Kind", (p) => p.kind],
			["State", (p) => state(p.state)],
			["Since", (p) => when(p.since)],
			["Last error", (p) => p.last_error],
			["Sent", (p) => p.sent, "num"],
			["Acked", (p) => p.acked, "num"],
			["Received", (p) => p.received, "num"],
			["Outbox", (p) => p.outbox_depth, "num"],
			["Books", (p) => state(p.diverged ? "diverged" : p.recovering ? "recovering" : p.checkpoint || "—")],
		];
		const recovering = (peers.peers || []).filter((p) => p.recovering);
		const fedCols = [
			["Peer", (p) => p.peer],
			["Our position", (p) => hours(p.position), "num"],
			["Their clearing", (p) => hours(p.peer_clearing), "num"],
			["In flight", (p) => hours(p.in_flight), "num"],
			["Verdict", (p) => state(p.diverged ? "diverged" : p.verdict || (p.position + p.peer_clearing === 0 ? "agree" : p.in_flight ? "in_flight" : "differ"))],
		];
		screen(
			"Federation",
			el("p", null, `${peers.bank}, a ${peers.role}.`, peers.ready ? "" : " Still reading its channel's state: not linking yet."),
			el("h2", null, "Peers"),
			table(null, peerCols, peers.peers, "This bank is not in a federation."),
			peers.peers && peers.peers.length ? csvButton("peers.csv", peerCols.map(([h, f]) => [h, (r) => f(r).textContent ?? f(r)]), peers.peers) : null,
			recovering.map((p) => notice("bad", recoveryText(p))),
			(peers.peers || []).flatMap((p) =>
				(p.recovery_lost || []).map((l) =>
					notice("bad", `Not recovered from ${p.peer}, our message${l.from === l.to ? ` ${l.from}` : `s ${l.from} to ${l.to}`}: ${l.what}.`)
				)
			),
			el("h2", null, "The ledger's audit"),
			notice(audit.ok ? "good" : "bad", audit.ok ? "Every invariant holds." : "An invariant fails: see below. Record nothing more until it is understood."),
			table(null, [["Invariant", (c) => c.invariant, "num"], ["Check", (c) => c.name], ["Result", (c) => state(c.ok ? "ok" : "failed")], ["Detail", (c) => c.detail]], audit.checks),
			el("h2", null, "The federation's audit"),
			table(null, fedCols, fed.peers, "No peers."),
			el("h2", null, "Backups"),
			backup.enabled
				? [
						backup.archive_failures > 0
							? notice("bad", `Archiving failed ${backup.archive_failures} times, last ${backup.last_failed_wal} at ${when(backup.last_failed_at)}: what is not archived cannot be restored. See the cluster's log.`)
							: null,
						el(
							"dl",
							null,
							[
								["Kept in", backup.dir],
								["Restorable to", backup.newest_restorable_at ? `${when(backup.newest_restorable_at)} (${Math.round(backup.newest_restorable_age_seconds / 60)} minutes ago)` : "not yet: the first base backup is being made"],
								["Base backups", `${backup.bases} kept, newest ${backup.newest_base || "none yet"}${backup.base_running ? ", one being made" : ""}`],
								["Last WAL archived", backup.last_wal ? `${backup.last_wal} at ${when(backup.last_wal_at)}` : "none yet"],
								["Kept for", `${backup.keep_days} days, a base backup every ${backup.base_every_days} days`],
								["Size", `${(backup.bytes / 1048576).toFixed(1)} MiB`],
							].map(([k, v]) => [el("dt", null, k), el("dd", null, v)])
						),
				  ]
				: el("p", null, `${backup.advice[0].toUpperCase()}${backup.advice.slice(1)}.`)
		);
	}

	/* What a restored bank's recovery from one peer has come to (recovery.sql's stages). */
	function recoveryText(p) {
		const r = p.recovering;
		const since = `Recovering from ${p.peer} since ${when(r.since)}: `;
		if (r.stage === "waiting") return since + "this bank was restored, and nothing new goes to it until its hello says whether it applied more of ours than we hold.";
		if (r.stage === "fetching")
			return since + `it applied our messages ${r.from} to ${r.to}, which this bank lost when it was put back to an earlier point; we hold them again up to ${r.held}. Nothing new goes to it, and nothing from it is applied, until we hold them all.`;
		return since + `our messages ${r.from} to ${r.to} are held again; we propose to it again once its checkpoint agrees.`;
	}

	/* ---- accounts and tokens ---- */

	async function accountsScreen() {
		const [users, tokens] = await Promise.all([get("/v1/users"), get("/v1/tokens")]);
		const secret = el("div", { "aria-live": "polite" });
		const roleOptions = [["broker", "broker"], ["viewer", "viewer"], ["coordinator", "coordinator"], ["referrer", "referrer"]];
		const showCode = (u) =>
			secret.replaceChildren(
				notice(
					"good",
					el("p", null, `Give ${u.name} this setup code, once, by a way only they can read. It works for 7 days.`),
					el("p", { class: "secret", "data-secret": "setup-code" }, u.setup_code),
					el("p", null, "Or the link: ", el("span", { class: "secret" }, `${location.origin}${u.setup_path}`))
				)
			);
		screen(
			"Accounts and tokens",
			secret,
			el("h2", null, "People's accounts"),
			table(
				null,
				[
					["Name", (u) => u.name],
					["Role", (u) => u.role],
					["Organisation", (u) => u.org],
					["State", (u) => u.state],
					["Made", (u) => when(u.created)],
					["", (u) => el("div", { class: "actions" },
						confirmButton("Reset", `Give ${u.name} a new setup code? Their password and sessions end.`, async () => showCode(await post(`/v1/users/${encodeURIComponent(u.name)}/reset`))),
						confirmButton("Remove", `Remove ${u.name}'s account?`, async () => { await post(`/v1/users/${encodeURIComponent(u.name)}/remove`); go("/console/accounts"); }, true))],
				],
				users.items,
				"No accounts yet."
			),
			el("h3", null, "Add an account"),
			form({
				label: "Add an account",
				submit: "Add account",
				fields: [
					{ name: "name", label: "Name", hint: "Lower case letters, digits, '.', '-' and '_'.", required: true },
					{ name: "role", label: "Role", type: "select", options: roleOptions },
					{ name: "org", label: "Organisation (referrers only)", inputmode: "numeric", hint: "The referring organisation's member number." },
				],
				send: async (v, f) => {
					if (v.org) v.org = Number(v.org);
					showCode(await post("/v1/users", v));
					f.reset();
				},
			}),
			el("h2", null, "Tokens, for scripts"),
			table(
				null,
				[
					["Name", (t) => t.name],
					["Role", (t) => t.role],
					["Organisation", (t) => t.org],
					["Made", (t) => when(t.created)],
					["", (t) => confirmButton("Revoke", `Revoke the token ${t.name}? Whatever uses it stops working.`, async () => { await post(`/v1/tokens/${encodeURIComponent(t.name)}/revoke`); go("/console/accounts"); }, true)],
				],
				tokens.items
			),
			el("h3", null, "Make a token"),
			form({
				label: "Make a token",
				submit: "Make token",
				fields: [
					{ name: "name", label: "Name", required: true },
					{ name: "role", label: "Role", type: "select", options: roleOptions },
					{ name: "org", label: "Organisation (referrers only)", inputmode: "numeric" },
				],
				send: async (v, f) => {
					if (v.org) v.org = Number(v.org);
					const t = await post("/v1/tokens", v);
					secret.replaceChildren(notice("good", el("p", null, `The token ${v.name}, shown this once:`), el("p", { class: "secret", "data-secret": "token" }, t.token)));
					f.reset();
				},
			})
		);
	}

	/* ---- the national body ---- */

	async function networkScreen() {
		const months = monthsBack(12);
		const [banks, summary, categories, areas, perMonth] = await Promise.all([
			get("/v1/network/banks"),
			get(`/v1/network/summary${q({ from: months[0], to: months[11] })}`),
			get(`/v1/network/categories${q({ from: months[0], to: months[11] })}`),
			get(`/v1/network/areas${q({ from: months[0], to: months[11] })}`),
			Promise.all(months.slice(6).map((m) => get(`/v1/network/summary?month=${m}`).then((s) => ({ month: m, banks: s.banks || [] })))),
		]);
		const late = (b) => b.report_age_seconds === null || b.report_age_seconds > 2 * 86400;
		const bankCols = [
			["Bank", (b) => b.bank],
			["Last report", (b) => when(b.last_report_at)],
			["Report", (b) => state(late(b) ? "late" : "fresh")],
			["Month", (b) => b.month],
			["Revision", (b) => b.revision, "num"],
			["Members", (b) => b.this_month && b.this_month.members, "num"],
			["Active", (b) => b.this_month && b.this_month.active, "num"],
			["Hours within", (b) => b.this_month && hours(b.this_month.within_minutes), "num"],
			["Hours between banks", (b) => b.this_month && hours(b.this_month.between_minutes), "num"],
		];
		const monthCols = [
			["month", (m) => m.month],
			["banks", (m) => m.banks, "num"],
			["members", (m) => m.members, "num"],
			["active", (m) => m.active, "num"],
			["new", (m) => m.new, "num"],
			["within_minutes", (m) => m.within_minutes, "num"],
			["between_minutes", (m) => m.between_minutes, "num"],
			["grant_minutes", (m) => m.grant_minutes, "num"],
			["partial", (m) => (m.partial ? "yes" : ""), null],
		];
		const now = summary.months[summary.months.length - 1] || {};
		const perBank = perMonth.flatMap((p) => p.banks.map((b) => ({ month: p.month, bank: b.bank, minutes: (b.within_minutes || 0) + (b.between_minutes || 0) })));
		screen(
			"The network at a glance",
			el(
				"ul",
				{ class: "figures" },
				el("li", null, "Banks reporting", el("span", { class: "value" }, banks.length)),
				el("li", null, "Reports late", el("span", { class: "value" }, banks.filter(late).length)),
				el("li", null, "Hours this month", el("span", { class: "value" }, hours((now.within_minutes || 0) + (now.between_minutes || 0)))),
				el("li", null, "Active members (rounded, as reported)", el("span", { class: "value" }, now.active ?? "—"))
			),
			el("p", { class: "muted" }, "Figures are as each bank reported them: counts of people are rounded, and a dash is a figure the bank withheld because it counted too few people to share."),
			reportSection("Banks and their reports", "banks.csv", bankCols, banks),
			el("h2", null, "Hours exchanged per month, network-wide"),
			chartOf("Hours exchanged per month across the network", {
				type: "line",
				data: {
					labels: months,
					datasets: [
						{ label: "within banks", borderColor: PALETTE[0], backgroundColor: PALETTE[0], data: summary.months.map((m) => (m.within_minutes || 0) / 60) },
						{ label: "between banks", borderColor: PALETTE[1], backgroundColor: PALETTE[1], data: summary.months.map((m) => (m.between_minutes || 0) / 60) },
					],
				},
				options: { scales: { y: { title: { display: true, text: "hours" }, beginAtZero: true } } },
			}),
			reportSection("Each month", "months.csv", monthCols, summary.months),
			el("h2", null, "Hours per month, by bank"),
			stackedChart("Hours exchanged per month, by bank", perBank, "bank"),
			reportSection("By bank and month", "banks-by-month.csv", [["month", (r) => r.month], ["bank", (r) => r.bank], ["minutes", (r) => r.minutes, "num"]], perBank),
			reportSection("Categories", "categories.csv", [["category", (r) => r.category], ["minutes", (r) => r.minutes, "num"], ["banks", (r) => r.banks, "num"], ["partial", (r) => (r.partial ? "yes" : "")]], categories.rows),
			reportSection("Areas", "areas.csv", [["district", (r) => r.district], ["minutes", (r) => r.minutes, "num"], ["banks", (r) => r.banks, "num"], ["partial", (r) => (r.partial ? "yes" : "")]], areas.rows)
		);
	}

	async function booksScreen() {
		const month = here.get("month") || "";
		const books = await get(`/v1/network/books${q({ month })}`);
		const names = [...new Set(books.pairs.flatMap((p) => [p.a, p.b]))].sort();
		const cell = (a, b) => {
			if (a === b) return el("td", { class: "muted" }, "—");
			const p = books.pairs.find((x) => (x.a === a && x.b === b) || (x.a === b && x.b === a));
			return el("td", null, p ? state(p.state) : "");
		};
		screen(
			`The books, pair by pair (${books.month})`,
			el(
				"form",
				{ class: "inline", method: "get", action: "/console/books", "aria-label": "Month" },
				field({ name: "month", label: "Month", type: "month", value: books.month }),
				el("div", { class: "actions" }, el("button", { type: "submit" }, "Show"))
			),
			books.diverged ? notice("bad", `${books.diverged} pairs diverged.`) : notice("good", "No pair is diverged."),
			names.length
				? el("table", { class: "matrix" }, el("caption", { class: "muted" }, "Each pair's books as both banks last reported them"),
					el("thead", null, el("tr", null, el("td"), names.map((n) => el("th", { scope: "col" }, n)))),
					el("tbody", null, names.map((a) => el("tr", null, el("th", { scope: "row" }, a), names.map((b) => cell(a, b))))))
				: el("p", { class: "muted" }, "No reports yet."),
			reportSection("Pairs", `books-${books.month}.csv`, [["a", (p) => p.a], ["b", (p) => p.b], ["state", (p) => p.state], ["a_position_minutes", (p) => p.a_position_minutes, "num"], ["b_position_minutes", (p) => p.b_position_minutes, "num"], ["in_flight", (p) => p.in_flight, "num"]], books.pairs)
		);
	}

	/* ---- the way in ---- */

	const ROUTES = [
		[/^\/console\/today$/, todayScreen, "/console/today"],
		[/^\/console\/care-review$/, careReviewScreen, "/console/today"],
		[/^\/console\/members$/, membersScreen, "/console/members"],
		[/^\/console\/members\/new$/, memberNew, "/console/members"],
		[/^\/console\/members\/(\d+)$/, memberScreen, "/console/members"],
		[/^\/console\/members\/(\d+)\/edit$/, memberEdit, "/console/members"],
		[/^\/console\/exchanges$/, exchangesScreen, "/console/exchanges"],
		[/^\/console\/exchanges\/new$/, exchangeNew, "/console/exchanges/new"],
		[/^\/console\/exchanges\/group$/, groupNew, "/console/exchanges/new"],
		[/^\/console\/grants\/new$/, grantNew, "/console/exchanges/new"],
		[/^\/console\/exchanges\/([a-z0-9:-]+)$/, exchangeScreen, "/console/exchanges"],
		[/^\/console\/statements$/, statementsScreen, "/console/statements"],
		[/^\/console\/directory$/, directoryScreen, "/console/directory"],
		[/^\/console\/directory\/claims$/, claimsScreen, "/console/directory"],
		[/^\/console\/directory\/contacts$/, contactsScreen, "/console/directory"],
		[/^\/console\/directory\/review$/, reviewScreen, "/console/directory"],
		[/^\/console\/referrals$/, referralsScreen, "/console/referrals"],
		[/^\/console\/intake$/, intakeScreen, "/console/intake"],
		[/^\/console\/intake\/new$/, intakeNew, "/console/intake"],
		[/^\/console\/intake\/(\d+)$/, intakeOne, "/console/intake"],
		[/^\/console\/reports$/, reportsScreen, "/console/reports"],
		[/^\/console\/federation$/, federationScreen, "/console/federation"],
		[/^\/console\/accounts$/, accountsScreen, "/console/accounts"],
		[/^\/console\/network$/, networkScreen, "/console/network"],
		[/^\/console\/books$/, booksScreen, "/console/books"],
	];

	function home() {
		if (observer) return "/console/network";
		if (me.role === "referrer") return "/console/intake";
		if (me.role === "viewer") return "/console/reports";
		return "/console/today";
	}

	/* The screen is drawn and its controls work: said for the tests,
	 * with the time since the navigation began. */
	function drawn() {
		document.body.dataset.readyMs = String(Math.round(performance.now()));
		document.body.dataset.ready = "1";
	}

	async function start() {
		const path = location.pathname.replace(/\/+$/, "");
		if (path === "/console/sign-in" || path === "/console/setup") {
			(path === "/console/setup" ? setup : signIn)();
			drawn();
			return;
		}
		try {
			me = await get("/v1/session");
		} catch (e) {
			go(`/console/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`);
			return;
		}
		try {
			observer = (await get("/v1/peers")).role === "observer";
		} catch (e) {
			observer = false;
		}
		if (path === "/console" || path === "") {
			location.replace(home());
			return;
		}
		const route = ROUTES.find(([re]) => re.test(path));
		frame(route ? route[2] : null);
		if (!route) {
			screen("Not found", el("p", null, "There is no such page. ", link(home(), "Go to the start"), "."));
			return;
		}
		try {
			await route[1](...path.match(route[0]).slice(1).map(decodeURIComponent));
		} catch (e) {
			if (!(e instanceof ApiError)) throw e;
			screen(
				e.status === 403 ? "Not allowed" : e.status === 404 ? "Not found" : "Something went wrong",
				notice("bad", e.message),
				el("p", null, link(home(), "Go to the start"))
			);
		} finally {
			drawn();
		}
	}

	start();
})();
