/* The console and the national body's dashboard in a real browser:
 * Debian's chromium, headless, driven by Playwright, against real daemons
 * that tests/integration/test_console.py started and filled. Each test
 * prints "ok" or "FAIL"; the last line is "N passed, N failed". Every
 * screen is checked with axe-core, photographed into the screens
 * directory, and timed from navigation to interactive (printed, never
 * asserted).
 * Usage: node console.test.mjs CONFIG.json */
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
mkdirSync(cfg.screens, { recursive: true });

const browser = await chromium.launch({
	executablePath: cfg.chromium,
	args: [
		"--no-sandbox",
		"--disable-gpu",
		"--disable-quic",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
	],
});

const results = [];
const timings = [];
const axeFound = [];
const pageErrors = [];

function check(cond, what) {
	if (!cond) throw new Error(what);
}

async function newPage() {
	const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
	const page = await context.newPage();
	page.on("pageerror", (e) => pageErrors.push(`${page.url()}: ${e.message}`));
	page.on("console", (m) => {
		if (m.type() === "error" && !/status of (400|401|403|404|409|422|429)|ERR_CONNECTION_RESET/.test(m.text())) pageErrors.push(`${page.url()}: ${m.text()}`);
	});
	return page;
}

/* Waits for the console to say it is ready: its data asked and drawn. */
async function ready(page) {
	await page.waitForSelector("body[data-ready]", { timeout: 15000 });
}

/* Opens a screen: timed, checked by axe, photographed once under name. */
const photographed = new Set();
async function visit(page, url, name) {
	await page.goto(url);
	await ready(page);
	if (name) await look(page, name);
}

async function look(page, name) {
	const t = await page.evaluate(() => Number(document.body.dataset.readyMs));
	timings.push([name, t]);
	await page.evaluate(axeSource);
	const found = await page.evaluate(async () => {
		const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] } });
		return r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.nodes.length} at ${v.nodes[0].target.join(" ")}`);
	});
	for (const f of found) axeFound.push(`${name}: ${f}`);
	if (!photographed.has(name)) {
		photographed.add(name);
		await page.screenshot({ path: join(cfg.screens, `${name}.png`), fullPage: true });
	}
}

async function test(name, fn) {
	const t0 = Date.now();
	try {
		await fn();
		results.push([name, true]);
		console.log(`ok   ${name} (${Date.now() - t0} ms)`);
	} catch (e) {
		results.push([name, false]);
		console.log(`FAIL ${name}: ${e.stack || e}`);
	}
}

async function signIn(page, bank, user, password) {
	await visit(page, `${bank}/console/sign-in`);
	await page.getByLabel("Account name").fill(user);
	await page.getByLabel("Password").fill(password || cfg.password);
	await page.getByRole("button", { name: "Sign in" }).click();
}

async function signedIn(page, bank, user) {
	await signIn(page, bank, user);
	await page.waitForURL(/\/console\/(today|reports|intake|network)$/);
	await ready(page);
}

/* A control by its label's whole text, "(required)" or not. */
function labelled(scope, text) {
	return scope.getByLabel(new RegExp(`^${text.replace(/[()]/g, "\\$&")}( \\(required\\))?$`));
}

/* The text of the error shown beside a field, found by its label. */
async function errorBeside(page, label) {
	const byLegend = page.locator("fieldset.field", { has: page.locator("legend", { hasText: label }) });
	const holder = (await byLegend.count()) ? byLegend : page.locator(".field", { has: labelled(page, label) });
	await holder.locator(".error:not(:empty)").waitFor({ timeout: 5000 });
	return holder.locator(".error").textContent();
}

async function figure(page, name) {
	return (await page.locator(`[data-figure="${name}"]`).first().textContent()).trim();
}

async function memberBalance(page, number) {
	await visit(page, `${cfg.colchester}/console/members/${number}`);
	return figure(page, "balance");
}

async function recordExchange(page, fields) {
	await visit(page, `${cfg.colchester}/console/exchanges/new`, "record-exchange");
	await page.getByLabel("Member who received help (pays)").fill(String(fields.payer));
	if (fields.bank) await page.getByLabel("Helper's bank").selectOption(fields.bank);
	await page.getByLabel("Member who helped (earns)").fill(String(fields.earner));
	await labelled(page, "Hours").fill(fields.hours);
	await page.getByLabel("Category").selectOption(fields.category || "lifts");
	await page.getByLabel("What was done").fill(fields.description || "a lift to the surgery");
	await page.getByRole("button", { name: "Record exchange" }).click();
}

/* Waits, reloading, until the exchange page shows state. */
async function exchangeState(page, want) {
	for (let i = 0; i < 100; i++) {
		const s = (await page.locator("dd").first().textContent()).trim();
		if (s === want) return;
		await page.waitForTimeout(200);
		await page.reload();
		await ready(page);
	}
	throw new Error(`the exchange never became ${want}`);
}

const C = cfg.colchester;
const members = cfg.members;
let memberAdded = null;

/* ---- for each role ---- */

await test("signing in: a wrong password is refused beside its field, then the right one signs in (coordinator)", async () => {
	const page = await newPage();
	await signIn(page, C, "carol", "not the password at all");
	check((await errorBeside(page, "Password")).includes("password is wrong"), "no refusal beside the password");
	await look(page, "sign-in-refused");
	await page.getByLabel("Password").fill(cfg.password);
	await page.getByRole("button", { name: "Sign in" }).click();
	await page.waitForURL(/\/console\/today$/);
	await ready(page);
	await look(page, "today");
	check((await page.textContent("header")).includes("carol (coordinator)"), "the header does not name carol");
	await page.context().close();
});

for (const [user, role] of [["bill", "broker"], ["vera", "viewer"], ["rita", "referrer"]])
	await test(`signing in with a wrong password, then the right one (${role})`, async () => {
		const page = await newPage();
		await signIn(page, C, user, "a wrong pass phrase");
		await errorBeside(page, "Password");
		await page.getByLabel("Password").fill(cfg.password);
		await page.getByRole("button", { name: "Sign in" }).click();
		await page.waitForURL(/\/console\/(today|reports|intake)$/);
		await ready(page);
		check((await page.textContent("header")).includes(`${user} (${role})`), "the header does not name the user");
		await page.context().close();
	});

await test("signing in by keyboard alone: Tab, type, Enter", async () => {
	const page = await newPage();
	await visit(page, `${C}/console/sign-in`, "sign-in");
	await page.keyboard.press("Tab"); /* the skip link */
	await page.keyboard.press("Tab");
	await page.keyboard.type("bill");
	await page.keyboard.press("Tab");
	await page.keyboard.type(cfg.password);
	await page.keyboard.press("Enter");
	await page.waitForURL(/\/console\/today$/);
	await ready(page);
	/* The first Tab reaches the skip link, which is shown when focused. */
	await page.keyboard.press("Tab");
	check((await page.evaluate(() => document.activeElement.textContent)).includes("Skip"), "the skip link is not first");
	await page.context().close();
});

await test("five wrong passwords lock the account, and the lock is shown", async () => {
	const page = await newPage();
	for (let i = 0; i < 5; i++) {
		await signIn(page, C, "lockme", `wrong pass phrase ${i}`);
		await errorBeside(page, "Password");
	}
	await signIn(page, C, "lockme", cfg.password);
	await page.locator(".form-error:not(:empty)").waitFor();
	const text = await page.locator(".form-error").allTextContents();
	check(text.join(" ").includes("locked"), `not shown as locked: ${text}`);
	await look(page, "sign-in-locked");
	await page.context().close();
});

await test("the coordinator adds a member, and edits them", async () => {
	const page = await newPage();
	await signedIn(page, C, "carol");
	await visit(page, `${C}/console/members`, "members");
	await page.getByRole("link", { name: "Add a member" }).click();
	await ready(page);
	await look(page, "member-add");
	await labelled(page, "Name").fill("Dora Pritchard");
	await page.getByLabel("Phone").fill("01206 500600");
	await page.getByLabel("Confidential notes").fill("prefers mornings");
	await page.getByRole("button", { name: "Add member" }).click();
	await page.waitForURL(/\/console\/members\/\d+\?added=1$/);
	await ready(page);
	memberAdded = Number(page.url().match(/members\/(\d+)/)[1]);
	check((await page.textContent("h1")).includes("Dora Pritchard"), "the new member's page is not shown");
	check((await page.textContent("main")).includes("prefers mornings"), "the notes are not shown to the coordinator");
	await look(page, "member");
	await page.getByRole("link", { name: "Edit" }).click();
	await ready(page);
	await look(page, "member-edit");
	await page.getByLabel("Skills").fill("gardening, lifts");
	await page.getByRole("button", { name: "Save changes" }).click();
	await page.waitForURL(/saved=1$/);
	await ready(page);
	check((await page.textContent("main")).includes("gardening, lifts"), "the change is not shown");
	/* Search and filter. */
	await visit(page, `${C}/console/members?q=Pritch&status=active`);
	const found = await page.locator("tbody tr").allTextContents();
	check(found.length >= 1 && found.every((t) => t.includes("Pritchard")), `the search found ${found}`);
	await page.context().close();
});

await test("a broker cannot add a member: the API's refusal is shown", async () => {
	const page = await newPage();
	await signedIn(page, C, "bill");
	await visit(page, `${C}/console/members`);
	check((await page.getByRole("link", { name: "Add a member" }).count()) === 0, "a broker is offered to add a member");
	await visit(page, `${C}/console/members/new`);
	await labelled(page, "Name").fill("Not Allowed");
	await page.getByRole("button", { name: "Add member" }).click();
	await page.locator(".form-error:not(:empty)").waitFor();
	check((await page.textContent(".form-error")).includes("coordinator"), "the refusal does not say why");
	await page.context().close();
});

for (const user of ["carol", "bill"])
	await test(`a local and a cross-bank exchange change the balances (${user})`, async () => {
		const page = await newPage();
		await signedIn(page, C, user);
		const before = await memberBalance(page, members.bob);
		await recordExchange(page, { payer: members.ann, earner: members.bob, hours: "1h30m" });
		await page.waitForURL(/\/console\/exchanges\/\d+\?recorded=1$/);
		await ready(page);
		await exchangeState(page, "settled");
		await look(page, "exchange");
		const after = await memberBalance(page, members.bob);
		check(before !== after, `Bob's balance did not change (${before})`);
		/* With Westminster's member: pending, then settled. */
		const annBefore = await memberBalance(page, members.ann);
		await recordExchange(page, { payer: members.ann, bank: "westminster", earner: members.wendy, hours: "1" });
		await page.waitForURL(/\/console\/exchanges\/colchester:\d+\?recorded=1$/);
		await ready(page);
		await exchangeState(page, "settled");
		await look(page, "exchange-cross-bank");
		const annAfter = await memberBalance(page, members.ann);
		check(annAfter !== annBefore, `Ann's balance did not change (${annBefore})`);
		await page.context().close();
	});

await test("refusals are shown beside the field they concern, in the API's words", async () => {
	const page = await newPage();
	await signedIn(page, C, "bill");
	await recordExchange(page, { payer: members.ann, earner: members.bob, hours: "lots" });
	check((await errorBeside(page, "Hours")).includes("hours must be like"), "bad hours not beside Hours");
	await look(page, "exchange-refused");
	await page.getByLabel("Member who received help (pays)").fill(String(members.cyril));
	await labelled(page, "Hours").fill("23");
	await page.getByRole("button", { name: "Record exchange" }).click();
	check((await errorBeside(page, "Member who received help (pays)")).includes("floor"), "below floor not beside the payer");
	await labelled(page, "Hours").fill("1");
	await page.getByLabel("Member who received help (pays)").fill("99999");
	await page.getByRole("button", { name: "Record exchange" }).click();
	check((await errorBeside(page, "Member who received help (pays)")).includes("99999"), "an unknown member not beside the payer");
	await page.context().close();
});

await test("a retried submission records once: the form keeps its idempotency key", async () => {
	const page = await newPage();
	await signedIn(page, C, "bill");
	const before = (await page.evaluate(async () => (await (await fetch("/v1/exchanges?limit=500")).json()).items.length));
	/* The answer is lost on the way back once: the browser retries the same form. */
	let dropped = false;
	await page.route("**/v1/exchanges", async (route) => {
		if (!dropped && route.request().method() === "POST") {
			dropped = true;
			await route.fetch(); /* the daemon records it ... */
			await route.abort("connectionreset"); /* ... and the page never hears */
			return;
		}
		await route.continue();
	});
	await recordExchange(page, { payer: members.ann, earner: members.bob, hours: "15m" });
	await page.locator(".form-error:not(:empty)").waitFor();
	await page.getByRole("button", { name: "Record exchange" }).click();
	await page.waitForURL(/\/console\/exchanges\/\d+\?recorded=1$/);
	const after = (await page.evaluate(async () => (await (await fetch("/v1/exchanges?limit=500")).json()).items.length));
	check(after === before + 1, `recorded ${after - before} times`);
	await page.context().close();
});

await test("the coordinator reverses an exchange from its page; a broker is not offered it", async () => {
	const broker = await newPage();
	await signedIn(broker, C, "bill");
	await recordExchange(broker, { payer: members.ann, earner: members.bob, hours: "2" });
	await broker.waitForURL(/\/console\/exchanges\/\d+\?recorded=1$/);
	const url = broker.url().replace(/\?.*/, "");
	await visit(broker, url);
	check((await broker.getByRole("button", { name: "Reverse exchange" }).count()) === 0, "a broker is offered a reversal");
	await broker.context().close();
	const coord = await newPage();
	await signedIn(coord, C, "carol");
	const before = await memberBalance(coord, members.bob);
	await visit(coord, url);
	await coord.getByRole("button", { name: "Reverse exchange" }).click();
	check((await errorBeside(coord, "Reason")).length > 0, "a reversal without a reason is not refused beside it");
	await coord.getByLabel("Reason").fill("recorded twice by mistake");
	await coord.getByRole("button", { name: "Reverse exchange" }).click();
	await coord.waitForURL(/reversed=1$/);
	await ready(coord);
	await look(coord, "exchange-reversed");
	const after = await memberBalance(coord, members.bob);
	check(after !== before, "the reversal did not change the balance");
	await coord.context().close();
});

await test("a group session and a grant", async () => {
	const page = await newPage();
	await signedIn(page, C, "carol");
	await visit(page, `${C}/console/exchanges/group`, "group-session");
	await page.getByLabel("Member or organisation who received the help (pays)").fill(String(members.ann));
	await page.getByLabel("Helpers").fill(`${members.bob}, ${memberAdded}`);
	await page.getByLabel("Hours for each helper").fill("30m");
	await page.getByLabel("Category").selectOption("gardening");
	await page.getByRole("button", { name: "Record group session" }).click();
	await page.waitForURL(/\/console\/exchanges\?recorded=1$/);
	await ready(page);
	await look(page, "exchanges");
	await visit(page, `${C}/console/grants/new?member=${memberAdded}`, "grant");
	await labelled(page, "Hours").fill("2");
	await labelled(page, "Reason").fill("welcome");
	await page.getByRole("button", { name: "Grant hours" }).click();
	await page.waitForURL(/\/console\/exchanges\/\d+\?recorded=1$/);
	await page.context().close();
});

for (const user of ["carol", "bill"])
	await test(`a statement prints one page per member (${user})`, async () => {
		const page = await newPage();
		await signedIn(page, C, user);
		const month = new Date().toISOString().slice(0, 7);
		await visit(page, `${C}/console/statements?member=${members.ann}&month=${month}`, "statement");
		check((await page.textContent("article.statement")).includes("Ann Smith"), "the statement does not name Ann");
		await page.emulateMedia({ media: "print" });
		check(!(await page.locator("nav.main").isVisible()), "the menu prints");
		await page.screenshot({ path: join(cfg.screens, "statement-print.png"), fullPage: true });
		const one = await page.pdf({ format: "A4" });
		writeFileSync(join(cfg.screens, "statement.pdf"), one);
		await page.emulateMedia({ media: "screen" });
		await visit(page, `${C}/console/statements?month=${month}`, "statements-month");
		const n = await page.locator("article.statement").count();
		check(n >= 3, `only ${n} statements in the month's batch`);
		const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: /Download statements-/ }).click()]);
		const csv = readFileSync(await download.path(), "utf8");
		check(csv.startsWith("member,name,date") && csv.includes("Ann Smith"), "the batch CSV is wrong");
		await page.emulateMedia({ media: "print" });
		const all = await page.pdf({ format: "A4" });
		const pages = (b) => (b.toString("latin1").match(/\/Type\s*\/Page[^s]/g) || []).length;
		check(pages(one) === 1, `one statement printed on ${pages(one)} pages`);
		check(pages(all) === n, `${n} statements printed on ${pages(all)} pages`);
		if (user === "carol") writeFileSync(join(cfg.screens, "statements.pdf"), all);
		await page.context().close();
	});

for (const user of ["carol", "bill"])
	await test(`the directory finds another bank's offer, and asks for contact (${user})`, async () => {
		const page = await newPage();
		await signedIn(page, C, user);
		await visit(page, `${C}/console/directory`, "directory");
		await page.getByLabel("Words").fill("hedge");
		await page.getByRole("button", { name: "Search" }).click();
		await page.waitForURL(/q=hedge/);
		await ready(page);
		await look(page, "directory-results");
		check((await page.textContent("tbody")).includes("westminster"), "Westminster's offer is not found");
		if (user === "bill") {
			await page.getByLabel("For our member").first().fill(String(members.ann));
			await page.getByLabel("Message to their broker").first().fill("Ann would like help with her hedge");
			await page.getByRole("button", { name: "Ask for contact" }).first().click();
			await page.waitForURL(/contacts/);
			await ready(page);
			await look(page, "directory-contacts");
		}
		await page.context().close();
	});

for (const [user, role] of [["carol", "coordinator"], ["bill", "broker"], ["vera", "viewer"], ["rita", "referrer"]])
	await test(`signing out ends the session (${role})`, async () => {
		const page = await newPage();
		await signedIn(page, C, user);
		await page.getByRole("button", { name: "Sign out" }).click();
		await page.waitForURL(/signed_out=1/);
		await ready(page);
		check((await page.textContent("main")).includes("You have signed out"), "no word of signing out");
		await page.goto(`${C}/console/today`);
		await page.waitForURL(/\/console\/sign-in/);
		await page.context().close();
	});

await test("a member referred to another bank, and accepted there; a safeguarding check recorded", async () => {
	const page = await newPage();
	await signedIn(page, C, "carol");
	await visit(page, `${C}/console/members/${members.cyril}`);
	await page.getByText("Refer this member").click();
	await page.getByLabel("To the bank").selectOption("westminster");
	await page.getByRole("button", { name: "Refer" }).click();
	check((await errorBeside(page, "What they agreed to share")).length > 0, "sharing nothing is not refused beside it");
	await page.getByRole("checkbox", { name: "name", exact: true }).check();
	await page.getByRole("checkbox", { name: "skills", exact: true }).check();
	await page.getByRole("button", { name: "Refer" }).click();
	await page.waitForURL(/\/console\/referrals\?sent=1$/);
	await ready(page);
	await look(page, "referrals");
	const west = await newPage();
	await signedIn(west, cfg.westminster, "carol");
	for (let i = 0; i < 100; i++) {
		await visit(west, `${cfg.westminster}/console/referrals`);
		if ((await west.getByRole("button", { name: "Accept" }).count()) > 0) break;
		await west.waitForTimeout(200);
	}
	check((await west.textContent("main")).includes("Cyril Moss"), "the referral's shared name is not shown at westminster");
	await look(west, "referrals-incoming");
	await west.getByRole("button", { name: "Accept" }).click();
	await west.waitForURL(/\/console\/referrals$/);
	await west.context().close();
	/* A broker records Cyril's DBS check. */
	const broker = await newPage();
	await signedIn(broker, C, "bill");
	await visit(broker, `${C}/console/members/${members.cyril}`);
	await broker.getByText("Record a check").click();
	await broker.getByLabel("Kind").selectOption("dbs-enhanced");
	await labelled(broker, "Certificate number").fill("001234567890");
	const now = new Date();
	await labelled(broker, "Checked on").fill(now.toISOString().slice(0, 10));
	await labelled(broker, "Renew by").fill(new Date(now.getTime() + 3 * 365 * 86400000).toISOString().slice(0, 10));
	await broker.getByRole("button", { name: "Record check" }).click();
	await broker.waitForURL(/saved=1$/);
	await ready(broker);
	check((await broker.textContent("main")).includes("A valid check is held"), "the check is not held");
	await broker.context().close();
	await page.context().close();
});

/* ---- what no role may do by typing a URL or replaying a cookie ---- */

await test("a viewer cannot reach a member's page by typing its URL", async () => {
	const page = await newPage();
	await signedIn(page, C, "vera");
	check((await page.getByRole("link", { name: "Members" }).count()) === 0, "a viewer is shown Members");
	await visit(page, `${C}/console/members/${members.ann}`, "viewer-refused");
	const text = await page.textContent("main");
	check(text.includes("Not allowed") && !text.includes("Ann Smith"), "a viewer sees a member");
	await visit(page, `${C}/console/reports`, "reports");
	await visit(page, `${C}/console/federation`, "federation");
	await page.context().close();
});

await test("a referrer sees its own organisation's referrals only", async () => {
	const page = await newPage();
	await signedIn(page, C, "rita");
	await look(page, "intake-referrer");
	await page.getByRole("link", { name: "Refer someone" }).click();
	await ready(page);
	await page.getByLabel("Name of the person referred").fill("Edna Lowe");
	await page.getByLabel("They agree to be contacted").check();
	await page.getByRole("button", { name: "Send referral" }).click();
	check((await errorBeside(page, "Why they are referred")).includes("reasons"), "no reasons is not refused beside them");
	await page.getByLabel("isolation or loneliness").check();
	await page.getByRole("button", { name: "Send referral" }).click();
	await page.waitForURL(/\/console\/intake\/\d+$/);
	await ready(page);
	check(!(await page.textContent("main")).includes("Not allowed"), "the referral is not shown to its referrer");
	await visit(page, `${C}/console/members/${members.ann}`);
	check((await page.textContent("main")).includes("Not allowed"), "a referrer sees a member");
	await page.context().close();
});

await test("a session cookie from another bank's console is refused", async () => {
	const west = await newPage();
	await signedIn(west, cfg.westminster, "carol");
	const cookies = await west.context().cookies();
	const stolen = cookies.find((c) => c.name === "tb_session_westminster");
	check(stolen, "westminster set no session cookie");
	check(stolen.httpOnly && stolen.sameSite === "Strict", "the cookie is not HttpOnly and SameSite=Strict");
	await west.context().close();
	const page = await newPage();
	const url = new URL(C);
	await page.context().addCookies([
		{ name: "tb_session_colchester", value: stolen.value, domain: url.hostname, path: "/", httpOnly: true, sameSite: "Strict" },
	]);
	await page.goto(`${C}/console/today`);
	await page.waitForURL(/\/console\/sign-in/);
	const status = await page.evaluate(async () => (await fetch("/v1/session")).status);
	check(status === 401, `colchester answered ${status} to westminster's session`);
	await page.context().close();
});

await test("the CSRF token is checked on every write", async () => {
	const page = await newPage();
	await signedIn(page, C, "carol");
	const answers = await page.evaluate(async (m) => {
		const body = JSON.stringify({ payer: m.ann, earner: m.bob, hours: 1, category: "lifts" });
		const none = await fetch("/v1/exchanges", { method: "POST", headers: { "Content-Type": "application/json" }, body });
		const wrong = await fetch("/v1/exchanges", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": "0".repeat(64) }, body });
		const token = (await (await fetch("/v1/session")).json()).csrf_token;
		const right = await fetch("/v1/exchanges", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": token }, body });
		return [none.status, (await none.json()).error.code, wrong.status, right.status];
	}, members);
	check(answers[0] === 403 && answers[1] === "csrf_failed" && answers[2] === 403 && answers[3] === 201, `answers ${answers}`);
	await page.context().close();
});

/* ---- the other screens, each looked at ---- */

await test("the coordinator's other screens: today, claims, contacts, review, intake, reports, federation, accounts", async () => {
	const page = await newPage();
	await signedIn(page, C, "carol");
	for (const [path, name] of [
		["/console/directory/claims", "directory-claims"],
		["/console/directory/contacts", "contact-requests"],
		["/console/directory/review", "directory-review"],
		["/console/intake", "intake"],
		["/console/intake/new", "intake-new"],
		[`/console/members/${members.ann}`, "member-history"],
		["/console/reports", "reports"],
		["/console/federation", "federation"],
		["/console/accounts", "accounts"],
		["/console/statements", "statements"],
		["/console/care-review", "care-review"],
		["/console/today", "today"],
	]) {
		await visit(page, `${C}${path}`, name);
		check(!(await page.textContent("main")).includes("Something went wrong"), `${path} failed: ${await page.textContent("main")}`);
	}
	/* A chart drawn by Chart.js. */
	await visit(page, `${C}/console/reports`);
	check((await page.locator("canvas").count()) >= 1, "no chart on the reports");
	const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: /Download categories/ }).click()]);
	check(readFileSync(await download.path(), "utf8").startsWith("month,category"), "the categories CSV is wrong");
	/* An account made here gets a setup code, and sets its password on the setup page. */
	const newUser = `brenda${Date.now() % 100000}`;
	await visit(page, `${C}/console/accounts`);
	await labelled(page.getByRole("form", { name: "Add an account" }), "Name").fill(newUser);
	await page.getByRole("button", { name: "Add account" }).click();
	await page.locator('[data-secret="setup-code"]').waitFor();
	const setupLink = (await page.locator(".secret").nth(1).textContent()).trim();
	await look(page, "accounts-code");
	const fresh = await newPage();
	await fresh.goto(setupLink);
	await ready(fresh);
	await look(fresh, "setup");
	check((await fresh.getByLabel("Account name").inputValue()) === newUser, "the setup link does not fill the name");
	check(!fresh.url().includes("code="), "the code stays in the address bar");
	await fresh.getByLabel("New password").fill("short");
	await fresh.getByRole("button", { name: "Set password" }).click();
	check((await errorBeside(fresh, "New password")).length > 0, "a weak password is not refused beside it");
	await fresh.getByLabel("New password").fill("brenda's own long pass phrase");
	await fresh.getByRole("button", { name: "Set password" }).click();
	await fresh.getByText("Your password is set").waitFor();
	await fresh.context().close();
	await page.context().close();
});

await test("the national body's dashboard: the network, the books matrix, CSV of every table", async () => {
	const page = await newPage();
	await signedIn(page, cfg.national, "nora");
	check(page.url().endsWith("/console/network"), "the observer does not open on the network");
	await look(page, "network");
	const text = await page.textContent("main");
	for (const b of ["colchester", "westminster"]) check(text.includes(b), `${b} is not on the dashboard`);
	check((await page.locator("canvas").count()) >= 2, "the network's charts are missing");
	const buttons = page.getByRole("button", { name: /^Download / });
	const n = await buttons.count();
	check(n >= 4, `only ${n} CSV downloads`);
	for (let i = 0; i < n; i++) {
		const [download] = await Promise.all([page.waitForEvent("download"), buttons.nth(i).click()]);
		check(readFileSync(await download.path(), "utf8").length > 0, "an empty CSV");
	}
	await visit(page, `${cfg.national}/console/books`, "books");
	check((await page.locator("table.matrix").count()) === 1, "no books matrix");
	check((await page.textContent("table.matrix")).includes("agree") || (await page.textContent("table.matrix")).includes("no report"), "the matrix says nothing");
	await visit(page, `${cfg.national}/console/federation`, "national-federation");
	await page.context().close();
});

await test("no page threw an error", async () => {
	check(pageErrors.length === 0, pageErrors.join("\n"));
});

await test("axe-core finds no serious or critical violation on any screen", async () => {
	check(axeFound.length === 0, [...new Set(axeFound)].join("\n"));
});

await browser.close();

/* Each screen's slowest visit, printed and kept beside the screenshots. */
const byScreen = new Map();
for (const [name, t] of timings) if (!byScreen.has(name) || byScreen.get(name) < t) byScreen.set(name, t);
const lines = ["screen                         interactive (ms, navigation to drawn)"];
for (const [name, t] of [...byScreen].sort()) lines.push(`${name.padEnd(30)} ${String(t).padStart(6)}`);
const worst = Math.max(...byScreen.values());
const sorted = [...byScreen.values()].sort((a, b) => a - b);
lines.push(`slowest screen: ${worst} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, over ${byScreen.size} screens (${photographed.size} screenshots in ${cfg.screens})`);
console.log("\n" + lines.join("\n"));
writeFileSync(join(cfg.screens, "timings.txt"), lines.join("\n") + "\n");
const passed = results.filter((r) => r[1]).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(results.length === passed ? 0 : 1);
