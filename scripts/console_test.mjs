// The console in a real browser: Debian's chromium driven by Playwright
// (playwright-core) against a broker, with kafkajs as the real client.
// Creates a topic in the console; kafkajs produces records to it (text,
// JSON, binary, and one that is markup trying to run script) and consumes
// them in a committing group; then the test walks the console: overview,
// topics, the topic page, the message browser (records shown as text, JSON
// pretty-printed, binary as base64, the markup inert, paging), the group's
// lag (0), a reset of its offsets to earliest (preview, then lag 20), and
// deletes the topic. A screenshot is saved on failure.
//
// Usage: node scripts/console_test.mjs HTTP_BASE BOOTSTRAP [ARTIFACT_DIR]
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";

const require = createRequire(import.meta.url);
const { chromium } = require("./console/node_modules/playwright-core");
const { Kafka, logLevel } = require("./console/node_modules/kafkajs");

const [base, bootstrap, artifacts = "target/console-artifacts"] = process.argv.slice(2);
if (!base || !bootstrap) {
  console.error("usage: node scripts/console_test.mjs HTTP_BASE BOOTSTRAP [ARTIFACT_DIR]");
  process.exit(2);
}
let failures = 0;
function report(ok, what, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} console: ${what}${ok ? "" : ": " + detail}`);
  if (!ok) failures++;
}

const run = Date.now();
const topic = `console-${run}`;
const group = `console-group-${run}`;
const XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>';

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage();
const problems = [];
page.on("dialog", (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
const view = page.locator("#view");
// The topic is created in the console.
await page.goto(base + "/#/topics");
await view.getByLabel("name").fill(topic);
await view.getByLabel("partitions").fill("2");
await view.getByRole("button", { name: "Create" }).click();
await view.getByRole("heading", { name: topic }).waitFor();
report(true, "a topic is created in the console");

const kafka = new Kafka({ clientId: "console-test", brokers: [bootstrap], logLevel: logLevel.NOTHING });
const producer = kafka.producer();
await producer.connect();
const messages = [];
for (let i = 0; i < 20; i++) messages.push({ key: `k-${i}`, value: `plain value ${i}` });
messages[3] = { key: "k-3", value: JSON.stringify({ order: 3, item: "book" }) };
messages[5] = { key: "k-5", value: XSS };
messages[7] = { key: "k-7", value: Buffer.from([0xff, 0xfe, 0x00, 0x01]) };
await producer.send({ topic, messages: messages.map((m) => ({ ...m, partition: 0, headers: { source: "kafkajs" } })) });
await producer.disconnect();

const consumer = kafka.consumer({ groupId: group });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
let seen = 0;
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`consumed ${seen} of 20 records in 60 s`)), 60_000);
  consumer.run({
    eachMessage: async () => {
      if (++seen === 20) { clearTimeout(timer); resolve(); }
    },
  }).catch(reject);
});
await consumer.disconnect(); // commits what it consumed
report(seen === 20, "kafkajs produced and consumed the records", `${seen}`);


try {
  await page.goto(base + "/");
  await view.getByRole("heading", { name: "Overview" }).waitFor();
  report(await view.getByText("brokers", { exact: true }).isVisible(), "the overview shows the brokers");

  await view.locator("svg.chart polyline").first().waitFor({ state: "attached" });
  await page.waitForTimeout(2500); // one more traffic sample
  const points = await view.locator("svg.chart polyline").first().getAttribute("points");
  report(points && points.trim().length > 0, "the overview charts throughput", `points "${points}"`);

  await page.getByRole("link", { name: "Topics", exact: true }).click();
  await view.getByRole("link", { name: topic }).click();
  await view.getByRole("heading", { name: "Partitions" }).waitFor();
  const rows = await view.locator("table").first().locator("tbody tr").count();
  report(rows === 2, "the topic page lists its two partitions", `${rows} rows`);

  await view.getByRole("link", { name: "Browse messages" }).click();
  await view.getByText("k-19").waitFor();
  const values = await view.locator("tbody tr").count();
  report(values === 20, "the message browser shows the partition's records", `${values} rows`);
  const pretty = await view.locator("pre", { hasText: '"item": "book"' }).count();
  report(pretty === 1, "a JSON value is pretty-printed");
  const binary = await view.getByText("base64://4AAQ==").count();
  report(binary === 1, "a binary value is shown as base64");
  const markup = await view.locator("pre", { hasText: "<img src=x" }).count();
  const injected = await page.evaluate(() => window.__xss);
  const images = await view.locator("img").count();
  report(markup === 1 && injected === undefined && images === 0,
    "a value that is markup is shown as text and runs nothing", `pre ${markup}, __xss ${injected}, img ${images}`);

  await view.getByLabel("from offset").fill("15");
  await view.getByRole("button", { name: "Show" }).click();
  // The first page ended the partition too: wait for the new page itself.
  await page.waitForFunction(() => location.hash.includes("offset=15")
    && document.querySelector("#view tbody tr td")?.textContent === "15");
  const tail = await view.locator("tbody tr").count();
  report(tail === 5, "browsing from an offset shows the records from there", `${tail} rows`);

  await page.goto(base + "/#/groups");
  await view.getByRole("link", { name: group }).click();
  await view.getByText("total lag", { exact: true }).waitFor();
  const lag = await view.locator(".card .value").first().textContent();
  report(lag === "0", "the group's lag is 0 after it consumed everything", lag);

  await view.locator('select[name="to"]').selectOption("earliest");
  await view.getByRole("button", { name: "Preview" }).click();
  await view.getByText("Preview (nothing changed):").waitFor();
  const stillZero = await view.locator(".card .value").first().textContent();
  report(stillZero === "0", "a reset preview changes nothing", stillZero);
  await view.getByRole("button", { name: "Reset", exact: true }).click();
  await view.locator(".card .value", { hasText: "20" }).waitFor();
  report(true, "resetting the group to earliest brings its lag back to 20");
  report(await view.getByRole("img", { name: "Total lag" }).count() === 1, "the group's lag is charted");

  await page.goto(base + "/#/topics/" + topic + "/messages");
  await view.getByText("k-19").waitFor();
  await view.getByRole("button", { name: "Start live tail" }).click();
  const tailer = kafka.producer();
  await tailer.connect();
  await tailer.send({ topic, messages: [{ key: "tail-1", value: "arrived live", partition: 0 }] });
  await tailer.disconnect();
  await view.getByLabel("Live tail").getByText("arrived live").waitFor({ timeout: 15_000 });
  report(true, "the live tail shows a record produced while it runs");

  await page.goto(base + "/#/topics/" + topic);
  await view.getByLabel("type the topic's name to confirm").fill("not it");
  await view.getByRole("button", { name: "Delete topic" }).click();
  await view.getByRole("alert").waitFor();
  await view.getByLabel("type the topic's name to confirm").fill(topic);
  await view.getByRole("button", { name: "Delete topic" }).click();
  await view.getByRole("heading", { name: "Topics" }).waitFor();
  const gone = await view.getByRole("link", { name: topic }).count();
  report(gone === 0, "the topic is deleted in the console (after typing its name)", `${gone} links left`);

  await page.goto(base + "/#/topics/no-such-topic");
  const alert = await view.getByRole("alert").textContent();
  report(alert.includes("no topic named"), "an unknown topic shows the API's error", alert);
  report(problems.length === 0, "no dialogs or script errors", problems.join("; "));
} catch (e) {
  report(false, "walking the console", e.message);
}
if (failures > 0) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: `${artifacts}/console-failure.png`, fullPage: true }).catch(() => {});
  console.log(`screenshot: ${artifacts}/console-failure.png`);
}
await browser.close();
process.exit(failures > 0 ? 1 : 0);
