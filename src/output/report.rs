//! `--report report.html`: one self-contained page (inline CSS and SVG, no script, nothing
//! fetched) with the summary and its plots: connections by state, the handshake RTT
//! distribution, alerts over time by severity, the scans (ports and hosts each probed), and the
//! busiest ports by category. It opens offline in any browser and can be mailed as it is.

use std::fmt::Write as _;

use super::summary::Summary;
use crate::classify::ports::Category;
use crate::flow::ConnState;
use crate::time::Micros;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const SEVERITY_COLOURS: [&str; 3] = ["#c0392b", "#e67e22", "#7f8c8d"];

fn category_colour(c: Option<Category>) -> &'static str {
    match c {
        Some(Category::Trojan) => "#c0392b",
        Some(Category::Risky) => "#e67e22",
        Some(Category::Proxy) => "#8e44ad",
        Some(Category::Service) => "#2980b9",
        None => "#95a5a6",
    }
}

/// A horizontal bar chart: one row per (label, value, colour, note).
fn bars(rows: &[(String, u64, &str, String)]) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let row_h = 22;
    let (label_w, bar_w) = (230, 420);
    let h = rows.len() * row_h + 10;
    // Room for the longest value and note after a full bar (about 7 px a character).
    let tail = rows
        .iter()
        .map(|r| (r.1.to_string().len() + r.3.chars().count() + 2) * 7)
        .max()
        .unwrap_or(0);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img">"##,
        w = label_w + bar_w + 10 + tail
    );
    for (i, (label, v, colour, note)) in rows.iter().enumerate() {
        let y = i * row_h + 5;
        let w = ((*v as f64 / max as f64) * bar_w as f64).round().max(1.0);
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" text-anchor="end" class="l">{label}</text><rect x="{bx}" y="{y}" width="{w}" height="16" fill="{colour}"><title>{label}: {v}</title></rect><text x="{vx}" y="{ty}" class="v">{v} {note}</text>"##,
            lx = label_w - 8,
            ty = y + 13,
            label = esc(label),
            bx = label_w,
            vx = label_w as f64 + w + 6.0,
            note = esc(note),
        );
    }
    s.push_str("</svg>");
    s
}

/// Columns over time: alert counts per time bucket, stacked by severity.
fn timeline(points: &[(Micros, u8)]) -> String {
    let (Some(min), Some(max)) = (
        points.iter().map(|p| p.0).min(),
        points.iter().map(|p| p.0).max(),
    ) else {
        return String::from("<p class=\"none\">No alerts.</p>");
    };
    const BUCKETS: usize = 60;
    let span = (max.0 - min.0).max(1) as f64;
    let mut counts = [[0u64; 3]; BUCKETS];
    for (t, sev) in points {
        let b = (((t.0 - min.0) as f64 / span) * (BUCKETS - 1) as f64).round() as usize;
        if let Some(col) = counts.get_mut(b.min(BUCKETS - 1))
            && let Some(c) = col.get_mut(usize::from(sev.clamp(&1, &3) - 1))
        {
            *c += 1;
        }
    }
    let peak = counts
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h, col_w) = (720, 180, 11);
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" role="img">"##,
        h + 40
    );
    for (i, col) in counts.iter().enumerate() {
        let mut y = h as f64;
        for (sev, n) in col.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let bh = (*n as f64 / peak as f64) * (h - 10) as f64;
            y -= bh;
            let _ = write!(
                s,
                r##"<rect x="{x}" y="{y:.1}" width="{cw}" height="{bh:.1}" fill="{c}"><title>{n} severity {sv}</title></rect>"##,
                x = 40 + i * col_w,
                cw = col_w - 1,
                c = SEVERITY_COLOURS.get(sev).copied().unwrap_or("#999"),
                sv = sev + 1,
            );
        }
    }
    let _ = write!(
        s,
        r##"<line x1="40" y1="{h}" x2="{x2}" y2="{h}" stroke="#333"/><text x="40" y="{ty}" class="l0">{a}</text><text x="{x2}" y="{ty}" text-anchor="end" class="l0">{b}</text><text x="36" y="14" text-anchor="end" class="l0">{peak}</text></svg>"##,
        x2 = 40 + BUCKETS * col_w,
        ty = h + 18,
        a = esc(&min.to_rfc3339()),
        b = esc(&max.to_rfc3339()),
    );
    s
}

/// The RTT histogram: counts per power-of-two bucket of microseconds.
fn rtt_chart(h: &hdrhistogram::Histogram<u64>) -> String {
    if h.is_empty() {
        return String::from("<p class=\"none\">No completed handshakes.</p>");
    }
    let mut rows = Vec::new();
    for v in h.iter_log(1, 2.0) {
        let n = v.count_since_last_iteration();
        if n == 0 {
            continue;
        }
        let hi = v.value_iterated_to();
        rows.push((format!("≤ {hi} µs"), n, "#16a085", String::new()));
    }
    bars(&rows)
}

/// Renders the page.
pub fn render(s: &Summary, title: &str) -> String {
    let j = s.to_json();
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>synwatch report: {t}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1000px;color:#222}}
h1{{font-size:1.5em}} h2{{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}}
table{{border-collapse:collapse;margin:.5em 0}} td,th{{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}} .none{{color:#888}}
svg text{{font-size:12px;fill:#333}} svg .l0{{font-size:11px;fill:#555}}
.cards{{display:flex;gap:1em;flex-wrap:wrap}} .card{{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}}
.card b{{display:block;font-size:1.4em}} .sev1{{color:#c0392b}} .sev2{{color:#e67e22}} .sev3{{color:#7f8c8d}}
</style></head><body><h1>synwatch report: {t}</h1>"##,
        t = esc(title)
    );
    // Cards.
    let _ = write!(
        o,
        r##"<div class="cards"><div class="card"><b id="packets">{}</b>packets</div><div class="card"><b id="connections">{}</b>connections</div><div class="card"><b id="completed">{}</b>handshakes completed</div><div class="card"><b id="rejected">{}</b>rejected</div><div class="card"><b id="unanswered">{}</b>unanswered</div><div class="card"><b id="alerts">{}</b>alerts (<span class="sev1">{}</span> / <span class="sev2">{}</span> / <span class="sev3">{}</span>)</div></div>"##,
        j.input.packets,
        j.connections.total,
        j.handshakes.completed,
        j.handshakes.rejected,
        j.handshakes.unanswered,
        j.alerts.total,
        j.alerts.high,
        j.alerts.medium,
        j.alerts.low,
    );
    // Inputs.
    o.push_str("<h2>Input</h2><table><tr><th>source</th><th>packets</th><th>outcome</th></tr>");
    if let Some(i) = &j.input.live_interface {
        let _ = write!(
            o,
            "<tr><td>live: {}</td><td class=n>{}</td><td></td></tr>",
            esc(i),
            j.input.packets
        );
    }
    for f in &j.input.files {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=n>{}</td><td>{}{}</td></tr>",
            esc(&f.name),
            f.packets,
            f.outcome,
            f.messages
                .iter()
                .map(|m| format!("<br>{}", esc(m)))
                .collect::<String>()
        );
    }
    o.push_str("</table>");
    // States.
    o.push_str("<h2>Connections by state</h2>");
    let rows: Vec<(String, u64, &str, String)> = ConnState::ALL
        .iter()
        .filter_map(|st| {
            j.connections.by_state.get(st.name()).map(|n| {
                (
                    st.name().to_string(),
                    *n,
                    "#2980b9",
                    st.meaning().to_string(),
                )
            })
        })
        .collect();
    if rows.is_empty() {
        o.push_str("<p class=\"none\">No connections.</p>");
    } else {
        o.push_str(&bars(&rows));
    }
    // RTT.
    o.push_str("<h2>Handshake: SYN → SYN-ACK</h2>");
    if let Some(r) = &j.handshakes.syn_synack_us {
        let _ = write!(
            o,
            "<p>{} handshakes: p50 <b>{}</b> µs, p90 <b>{}</b> µs, p99 <b>{}</b> µs, max <b>{}</b> µs.</p>",
            r.count, r.p50, r.p90, r.p99, r.max
        );
    }
    o.push_str(&rtt_chart(&s.syn_synack));
    // Alerts.
    o.push_str("<h2>Alerts over time</h2>");
    o.push_str(&timeline(&s.alert_times));
    o.push_str("<table><tr><th>severity</th><th>rule</th><th>what</th><th>alerts</th><th>connections</th></tr>");
    for a in &j.alerts.top {
        let _ = write!(
            o,
            "<tr><td class=\"sev{sv}\">{sv}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            a.rule,
            esc(&a.label),
            a.alerts,
            a.connections,
            sv = a.severity
        );
    }
    o.push_str("</table>");
    // Scans.
    o.push_str("<h2>Scans</h2>");
    if s.scans.is_empty() {
        o.push_str("<p class=\"none\">No scans.</p>");
    } else {
        let mut rows = Vec::new();
        for sc in &s.scans {
            let who = format!("{} ({})", sc.scanner.to_ip(), sc.technique.name());
            rows.push((
                format!("{who} ports"),
                sc.ports,
                "#c0392b",
                format!("on {} host(s)", sc.targets),
            ));
            rows.push((
                format!("{who} hosts"),
                sc.targets,
                "#e67e22",
                format!("{} open found", sc.open_total),
            ));
        }
        o.push_str(&bars(&rows));
        o.push_str("<table><tr><th>scanner</th><th>technique</th><th>shape</th><th>hosts</th><th>ports</th><th>open ports found</th></tr>");
        for sc in &s.scans {
            let open: Vec<String> = sc
                .open
                .iter()
                .take(12)
                .map(|f| {
                    let name =
                        s.db.as_ref()
                            .and_then(|db| db.lookup_ip(f.proto, f.port))
                            .map(|e| e.display_name().to_string())
                            .unwrap_or_default();
                    format!("{}:{} {}", f.host.to_ip(), f.port, name)
                })
                .collect();
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
                sc.scanner.to_ip(),
                sc.technique.name(),
                sc.shape,
                sc.targets,
                sc.ports,
                esc(&open.join(", "))
            );
        }
        o.push_str("</table>");
    }
    // Ports.
    o.push_str("<h2>Busiest destination ports</h2>");
    let rows: Vec<(String, u64, &str, String)> = j
        .top_ports
        .iter()
        .map(|p| {
            let cat = p.category.and_then(Category::parse);
            (
                format!(
                    "{}/{} {}",
                    p.port,
                    p.proto,
                    p.service.clone().unwrap_or_default()
                ),
                p.connections,
                category_colour(cat),
                p.category.unwrap_or("unknown").to_string(),
            )
        })
        .collect();
    if rows.is_empty() {
        o.push_str("<p class=\"none\">No TCP or UDP connections.</p>");
    } else {
        o.push_str(&bars(&rows));
    }
    o.push_str(
        "<h2>Top talkers</h2><table><tr><th>host</th><th>connections</th><th>IP bytes</th></tr>",
    );
    for t in &j.top_talkers {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            t.host, t.connections, t.ip_bytes
        );
    }
    o.push_str("</table><p class=\"none\">Written by synwatch. Figures as in the terminal summary.</p></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_empty_report() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let s = Summary::default();
        let html = render(&s, "empty <test>");
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("empty &lt;test&gt;"));
        assert!(html.contains("No alerts.") && html.contains("No scans."));
        // Self-contained: no script, nothing loaded from anywhere.
        for bad in ["<script", "src=", "<link", "url(", "@import"] {
            assert!(!html.contains(bad), "{bad}");
        }
    }
}
