//! The dashboard's HTML, drawn on the server: no JavaScript, no framework,
//! nothing fetched from elsewhere (the page's CSP forbids it). Every text
//! from Redis is escaped (`esc`): queue names, worker ids, dead letters and
//! reasons are input from outside. Charts are inline SVG (`chart`).

use super::fleet::{Snapshot, Worker};
use super::history::{History, Rate, Sample};
use super::letters::Shown;

/// What every page says about where it comes from.
pub struct Frame<'a> {
    /// The Redis URL, password redacted.
    pub redis: &'a str,
    /// Whether actions are off.
    pub read_only: bool,
    /// The CSRF token forms carry.
    pub csrf: &'a str,
    /// Unix milliseconds now.
    pub now_ms: u64,
}

/// `s` safe in HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// `s` as a URL query value.
pub fn query(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00020;font-weight:600}.ok{color:#08660b}\
.banner{background:#fde7e9;border:1px solid #b00020;padding:.5em}.note{background:#e8f4e8;border:1px solid #08660b;padding:.5em}\
.muted{color:#666}code,pre{font:12px ui-monospace,monospace}pre{white-space:pre-wrap;word-break:break-all;margin:0;max-width:60em}\
svg{background:#fafafa;border:1px solid #ddd}button{margin:0 .2em}";

/// A whole page around `body`; `refresh` reloads it every so many seconds.
pub fn page(title: &str, frame: &Frame<'_>, refresh: Option<u64>, body: &str) -> String {
    let meta = refresh.map_or(String::new(), |s| {
        format!("<meta http-equiv=\"refresh\" content=\"{s}\">")
    });
    let mode = if frame.read_only {
        " &middot; <b>read-only</b>"
    } else {
        ""
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>{meta}<title>{}</title><style>{STYLE}</style></head>\
         <body><h1><a href=\"/\">qpipe dashboard</a></h1><p class=muted>Redis <code>{}</code>{mode}</p>{body}</body></html>",
        esc(title),
        esc(frame.redis)
    )
}

/// "3.2 s" / "4 min" / "2 h" ago, from milliseconds.
pub fn age(ms: u64) -> String {
    match ms {
        0..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..=7_199_999 => format!("{} min", ms / 60_000),
        _ => format!("{} h", ms / 3_600_000),
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or("&ndash;".into(), |v| format!("{v:.1}"))
}

/// The overview: every queue, job list, frontier and lock of `snap`.
pub fn overview(
    snap: &Snapshot,
    history: &History,
    frame: &Frame<'_>,
    sampled: Option<(u64, &str)>,
    every: u64,
) -> String {
    let mut b = String::new();
    match sampled {
        Some((at, err)) if !err.is_empty() && at > 0 => b.push_str(&format!(
            "<p class=banner id=error>Redis did not answer the last sample: {} (showing the sample of {} ago)</p>",
            esc(err),
            age(frame.now_ms.saturating_sub(at))
        )),
        Some((_, err)) if !err.is_empty() => b.push_str(&format!(
            "<p class=banner id=error>No sample has succeeded yet: {}</p>",
            esc(err)
        )),
        Some((at, _)) => b.push_str(&format!(
            "<p class=muted>Sampled {} ago, every {every} s; this page reloads itself.</p>",
            age(frame.now_ms.saturating_sub(at))
        )),
        None => b.push_str("<p class=muted>The first sample is being taken.</p>"),
    }
    if !snap.foreign.is_empty() {
        let names: Vec<String> = snap.foreign.iter().take(10).map(|n| esc(n)).collect();
        b.push_str(&format!(
            "<p class=muted id=foreign>Not shown: {} names that look like qpipe's keys but hold other types ({}{}).</p>",
            snap.foreign.len(),
            names.join(", "),
            if snap.foreign.len() > 10 { ", ..." } else { "" }
        ));
    }
    if snap.not_shown > 0 {
        b.push_str(&format!(
            "<p class=banner id=not-shown>{} more structures found than the {} of each kind shown: name the ones you want with --key, --jobs, --frontier or --lock.</p>",
            snap.not_shown,
            super::fleet::MAX_SHOWN
        ));
    }
    queues(&mut b, snap, history);
    for q in &snap.queues {
        b.push_str(&format!(
            "<h2>Queue {} over the last samples</h2>",
            esc(&q.name)
        ));
        b.push_str(&charts(&history.samples(&q.name), &history.rates(&q.name)));
    }
    workers(&mut b, snap, frame.now_ms);
    jobs(&mut b, snap);
    frontiers_and_locks(&mut b, snap);
    page("qpipe dashboard", frame, Some(every.max(2)), &b)
}

fn queues(b: &mut String, snap: &Snapshot, history: &History) {
    b.push_str("<h2>Queues</h2>");
    if snap.queues.is_empty() {
        b.push_str("<p class=muted id=no-queues>No qpipe queue found yet.</p>");
        return;
    }
    b.push_str("<table id=queues><tr><th>queue</th><th class=n>length</th><th class=n>in /s</th><th class=n>out /s</th><th class=n>dead letters</th><th class=n>held by workers</th><th class=n>live workers</th><th class=n>orphaned items</th></tr>");
    for q in &snap.queues {
        let r: Option<Rate> = history.latest(&q.name);
        let held: u64 = q.workers.iter().map(|w| w.held).sum();
        let live = q.workers.iter().filter(|w| w.beat.is_some()).count();
        let orphaned: u64 = q
            .workers
            .iter()
            .filter(|w| w.beat.is_none())
            .map(|w| w.held)
            .sum();
        let dead_links: Vec<String> = q
            .dead_lists
            .iter()
            .map(|(l, n)| format!("<a href=\"/dead?list={}\">{n}</a>", query(l)))
            .collect();
        let class = if orphaned > 0 {
            " class=\"n bad\""
        } else {
            " class=n"
        };
        b.push_str(&format!(
            "<tr data-queue=\"{}\"><td>{}{}</td><td class=n data-k=length>{}</td><td class=n data-k=in>{}</td><td class=n data-k=out>{}</td><td class=n data-k=dead>{}</td><td class=n data-k=held>{held}</td><td class=n data-k=workers>{live}</td><td{class} data-k=orphaned>{orphaned}</td></tr>",
            esc(&q.name),
            esc(&q.name),
            match q.lists.len() {
                0 | 1 => String::new(),
                n => format!(" <span class=muted>({n} shards)</span>"),
            },
            q.length,
            rate(r.and_then(|r| r.pushed)),
            rate(r.and_then(|r| r.popped)),
            if q.dead == 0 { "0".into() } else { dead_links.join(" + ") },
        ));
    }
    b.push_str("</table>");
}

/// The queue length and the rates as two small SVG charts.
pub fn charts(samples: &[Sample], rates: &[Rate]) -> String {
    let lengths: Vec<f64> = samples.iter().map(|s| s.length as f64).collect();
    let ins: Vec<f64> = rates.iter().map(|r| r.pushed.unwrap_or(0.0)).collect();
    let outs: Vec<f64> = rates.iter().map(|r| r.popped.unwrap_or(0.0)).collect();
    format!(
        "<p>{} {}</p>",
        chart("length", &[("#1f5fbf", &lengths)]),
        chart(
            "in (green) and out (red) per second",
            &[("#08660b", &ins), ("#b00020", &outs)]
        )
    )
}

/// One chart: each series a polyline, scaled to the largest value.
pub fn chart(title: &str, series: &[(&str, &Vec<f64>)]) -> String {
    const W: f64 = 360.0;
    const H: f64 = 90.0;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0_f64, f64::max);
    let mut lines = String::new();
    for (color, values) in series {
        if values.len() < 2 {
            continue;
        }
        let step = W / (values.len() - 1) as f64;
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let y = if max > 0.0 {
                    H - 4.0 - (v / max) * (H - 20.0)
                } else {
                    H - 4.0
                };
                format!("{:.1},{:.1}", i as f64 * step, y)
            })
            .collect();
        lines.push_str(&format!(
            "<polyline fill=none stroke=\"{color}\" stroke-width=1.5 points=\"{}\"/>",
            points.join(" ")
        ));
    }
    format!(
        "<svg width={W} height={H} viewBox=\"0 0 {W} {H}\" role=img aria-label=\"{t}\"><text x=4 y=12 font-size=11>{t} (max {max:.1})</text>{lines}</svg>",
        t = esc(title)
    )
}

fn workers(b: &mut String, snap: &Snapshot, now_ms: u64) {
    let all: Vec<&Worker> = snap
        .queues
        .iter()
        .flat_map(|q| &q.workers)
        .chain(snap.jobs.iter().flat_map(|j| &j.workers))
        .collect();
    b.push_str("<h2>Workers</h2>");
    if all.is_empty() {
        b.push_str("<p class=muted>No registered worker (reliable consumers and job workers register; plain BRPOP consumers do not).</p>");
        return;
    }
    b.push_str("<table id=workers><tr><th>list</th><th>worker</th><th>heartbeat</th><th class=n>items held</th><th class=n>batches</th></tr>");
    for w in all {
        let beat = match w.beat.as_deref() {
            Some(t) => match crate::run::log::parse_rfc3339_ms(t) {
                Some(ms) => format!(
                    "<span class=ok>{} ago</span>",
                    age(now_ms.saturating_sub(ms))
                ),
                None => format!("<span class=ok>{}</span>", esc(t)),
            },
            None if w.held > 0 => {
                "<span class=bad>expired: orphaned, waiting for recovery</span>".into()
            }
            None => "<span class=bad>expired</span>".into(),
        };
        b.push_str(&format!(
            "<tr data-worker=\"{}\"><td>{}</td><td><code>{}</code></td><td>{beat}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(&w.id),
            esc(&w.list),
            esc(&w.id),
            w.held,
            w.batches
        ));
    }
    b.push_str("</table>");
}

fn jobs(b: &mut String, snap: &Snapshot) {
    if snap.jobs.is_empty() {
        return;
    }
    b.push_str("<h2>Crawl jobs</h2><table id=jobs><tr><th>job list</th><th class=n>pending</th><th class=n>leased</th><th class=n>orphaned</th><th class=n>delayed</th><th class=n>scheduled</th><th class=n>done</th><th class=n>dead</th><th class=n>live workers</th></tr>");
    for j in &snap.jobs {
        let leased: u64 = j
            .workers
            .iter()
            .filter(|w| w.beat.is_some())
            .map(|w| w.held)
            .sum();
        let orphaned: u64 = j
            .workers
            .iter()
            .filter(|w| w.beat.is_none())
            .map(|w| w.held)
            .sum();
        let live = j.workers.iter().filter(|w| w.beat.is_some()).count();
        let dead = match j.dead {
            0 => "0".to_string(),
            n => format!(
                "<a href=\"/dead?list={}\">{n}</a>",
                query(&crate::queue::keys::dead(&j.name))
            ),
        };
        b.push_str(&format!(
            "<tr data-jobs=\"{}\"><td>{}</td><td class=n>{}</td><td class=n>{leased}</td><td class=n>{orphaned}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{dead}</td><td class=n>{live}</td></tr>",
            esc(&j.name),
            esc(&j.name),
            j.pending,
            j.delayed,
            j.scheduled,
            j.done
        ));
    }
    b.push_str("</table>");
}

fn frontiers_and_locks(b: &mut String, snap: &Snapshot) {
    if !snap.frontiers.is_empty() {
        b.push_str("<h2>Shared frontiers</h2><table id=frontiers><tr><th>name</th><th class=n>queued</th><th class=n>leased</th><th class=n>seen</th></tr>");
        for f in &snap.frontiers {
            let seen = f.seen.map_or("?".into(), |n| n.to_string());
            b.push_str(&format!(
                "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{seen}</td></tr>",
                esc(&f.name),
                f.queued,
                f.leased
            ));
        }
        b.push_str("</table>");
    }
    if !snap.locks.is_empty() {
        b.push_str("<h2>Locks</h2><table id=locks><tr><th>lock</th><th>held by</th><th class=n>expires in</th></tr>");
        for l in &snap.locks {
            let holder = l
                .holder
                .as_deref()
                .map_or("(free)".into(), |h| format!("<code>{}</code>", esc(h)));
            let ttl = if l.ttl_ms >= 0 {
                age(l.ttl_ms as u64)
            } else {
                "&ndash;".into()
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td>{holder}</td><td class=n>{ttl}</td></tr>",
                esc(&l.name)
            ));
        }
        b.push_str("</table>");
    }
}

/// Dead letters shown per page.
pub const PER_PAGE: u64 = 50;

/// One page of a dead list.
pub struct DeadPage<'a> {
    /// The dead list.
    pub list: &'a str,
    /// Page number, from 0 (newest first).
    pub page: u64,
    /// Letters in the list.
    pub total: u64,
    /// This page's letters.
    pub letters: &'a [Shown],
    /// What the last action did, if any.
    pub notice: Option<&'a str>,
}

/// A page of dead letters, with the forms that re-queue or delete them.
pub fn dead(d: &DeadPage<'_>, frame: &Frame<'_>) -> String {
    let mut b = format!(
        "<h2>Dead letters of <code>{}</code>: {} (newest first)</h2>",
        esc(d.list),
        d.total
    );
    if let Some(n) = d.notice {
        b.push_str(&format!("<p class=note id=notice>{}</p>", esc(n)));
    }
    let first = d.page * PER_PAGE;
    let form = !frame.read_only && !d.letters.is_empty();
    if form {
        b.push_str(&format!(
            "<form method=post action=\"/dead\"><input type=hidden name=list value=\"{}\"><input type=hidden name=page value={}><input type=hidden name=len value={}><input type=hidden name=csrf value=\"{}\">",
            esc(d.list),
            d.page,
            d.total,
            esc(frame.csrf)
        ));
    }
    b.push_str("<table id=dead><tr><th></th><th class=n>#</th><th>set aside</th><th>reason</th><th>by</th><th>item</th><th></th></tr>");
    for (i, l) in d.letters.iter().enumerate() {
        b.push_str(&letter_row(first + i as u64 + 1, l, form));
    }
    b.push_str("</table>");
    if form {
        b.push_str(&format!(
            "<p><button name=requeue value=selected>Re-queue selected</button><button name=delete value=selected>Delete selected</button> \
             <button name=requeue value=all id=requeue-all>Re-queue all {n}</button><button name=delete value=all>Delete all {n}</button></p></form>",
            n = d.total
        ));
    }
    b.push_str(&pager(d));
    page("dead letters", frame, None, &b)
}

fn letter_row(n: u64, l: &Shown, form: bool) -> String {
    // A form names a letter by its digest and where it was (0 = newest).
    let digest = esc(&format!("{}@{}", l.digest, n - 1));
    let mut item = esc(&clip(&l.item, 400));
    if l.cut || l.item.chars().nth(400).is_some() {
        item.push_str(&format!(
            " <span class=muted>({} bytes in all)</span>",
            l.bytes
        ));
    }
    let (pick, buttons) = match form {
        true => (
            format!("<input type=checkbox name=pick value=\"{digest}\" aria-label=\"select {n}\">"),
            format!("<button name=requeue value=\"{digest}\" class=requeue>Re-queue</button><button name=delete value=\"{digest}\" class=delete>Delete</button>"),
        ),
        false => (String::new(), String::new()),
    };
    format!(
        "<tr data-digest=\"{digest}\"><td>{pick}</td><td class=n>{n}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><pre>{item}</pre></td><td>{buttons}</td></tr>",
        esc(&clip(&l.at, 100)),
        esc(&clip(&l.reason, 400)),
        esc(&clip(&l.consumer, 200)),
    )
}

fn pager(d: &DeadPage<'_>) -> String {
    let pages = d.total.div_ceil(PER_PAGE).max(1);
    let link = |p: u64, label: &str| {
        format!(
            "<a href=\"/dead?list={}&amp;page={p}\">{label}</a>",
            query(d.list)
        )
    };
    let mut out = format!("<p>page {} of {pages} ", d.page + 1);
    if d.page > 0 {
        out.push_str(&link(d.page - 1, "newer"));
        out.push(' ');
    }
    if d.page + 1 < pages {
        out.push_str(&link(d.page + 1, "older"));
    }
    out.push_str(" &middot; <a href=\"/\">overview</a></p>");
    out
}

/// At most `n` characters of `s`.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_redis_is_escaped_everywhere() {
        assert_eq!(
            esc("<a href='x'>&\"</a>\u{7}"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;\u{fffd}"
        );
        let raw = br#"{"reason":"<script>x</script>","consumer":"c","at":"t","item":"<img src=x onerror=alert(1)>"}"#;
        let l = super::super::letters::shown("d".into(), raw, raw.len() as u64);
        let row = letter_row(1, &l, true);
        assert!(!row.contains("<script>") && !row.contains("<img"), "{row}");
        assert!(row.contains("&lt;img src=x onerror=alert(1)&gt;"), "{row}");
    }

    #[test]
    fn a_chart_scales_to_its_largest_value() {
        let svg = chart("t", &[("red", &vec![0.0, 5.0, 10.0])]);
        assert!(
            svg.contains("points=\"0.0,86.0 180.0,51.0 360.0,16.0\""),
            "{svg}"
        );
        assert!(svg.contains("(max 10.0)"));
        assert!(!chart("t", &[("red", &vec![1.0])]).contains("polyline"));
    }
}
