//! Results as Markdown tables, a combined JSON file and a plot (gnuplot, if present).
//!
//! Input: the result files of `sfu-load run` — ramps (one per scenario and worker
//! count), half-knee runs (`--half-knee`), churn runs. Output (`table.md`): a summary
//! comparing 1 and N workers (knee, packet rate at < loss limit, their ratios), the cost
//! per forwarded packet against the bare path, latency at half the knee, memory, how
//! the receive transports and the CPU were spread over the workers, and every step of
//! every ramp, one table per worker count.

use std::fmt::Write;
use std::process::Command;

use serde_json::{json, Value};

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

fn workers_of(r: &Value) -> u64 {
    r["workers"].as_u64().unwrap_or(1)
}

fn is_half(r: &Value) -> bool {
    r["half_knee_of"].is_string()
}

/// "a / b / c" of the per-worker figure `key` (scaled), or "-" with one worker.
fn per_worker(s: &Value, key: &str, scale: f64, digits: usize) -> String {
    let ws = s["workers"].as_array().cloned().unwrap_or_default();
    if ws.len() < 2 {
        return "-".into();
    }
    ws.iter().map(|w| w[key].as_f64().map(|x| format!("{:.digits$}", x * scale)).unwrap_or("-".into())).collect::<Vec<_>>().join(" / ")
}

/// One row per measured step of every result.
pub fn table(results: &[Value]) -> String {
    let mut t = String::new();
    t.push_str("| scenario | workers | step | consumers | consumer streams | out pkt/s | SFU CPU (cores) | pkt/s per SFU core | SFU µs/pkt | bare µs/pkt | SFU/bare | loss % | worst consumer loss % | latency p50 / p99 / max µs | SFU heap kB/stream | join→media p50 / max ms | machine busy (cores) | per worker: recv transports | per worker: CPU (cores) |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in results {
        let scen = r["scenario"].as_str().unwrap_or("?");
        let steps = r["steps"].as_array().cloned().unwrap_or_default();
        let mut prev: Option<&Value> = None;
        for s in &steps {
            // Heap per stream between this step and the previous one.
            let heap = match prev {
                Some(p) => {
                    let ds = s["consumer_streams"].as_f64().unwrap_or(0.0) - p["consumer_streams"].as_f64().unwrap_or(0.0);
                    let dh = s["sfu_heap_bytes"].as_f64().unwrap_or(0.0) - p["sfu_heap_bytes"].as_f64().unwrap_or(0.0);
                    if ds > 0.0 {
                        format!("{:.1}", dh / ds / 1e3)
                    } else {
                        "-".into()
                    }
                }
                None => "-".into(),
            };
            prev = Some(s);
            let secs = s["secs"].as_f64().unwrap_or(1.0);
            let _ = writeln!(
                t,
                "| {scen}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {heap} | {} / {} | {} | {} | {} |",
                if is_half(r) { " (half knee)" } else { "" },
                workers_of(r),
                s["label"].as_str().unwrap_or(""),
                s["consumers"],
                s["consumer_streams"],
                f(&s["out_pps"], 0),
                f(&s["sfu_core_utilisation"], 2),
                f(&s["pps_per_sfu_core"], 0),
                f(&s["sfu_us_per_out_packet"], 2),
                f(&s["bare"]["us_per_out_packet"], 2),
                s["ratio_sfu_to_bare"].as_f64().map(|x| format!("{x:.2}×")).unwrap_or("-".into()),
                f(&s["loss_pct"], 3),
                f(&s["worst_consumer_loss_pct"], 2),
                f(&s["latency_us"]["p50"], 0),
                f(&s["latency_us"]["p99"], 0),
                f(&s["latency_us"]["max"], 0),
                f(&s["join_to_first_media_ms"]["p50"], 0),
                f(&s["join_to_first_media_ms"]["max"], 0),
                f(&s["machine_busy_cores"], 2),
                per_worker(s, "recv_transports", 1.0, 0),
                per_worker(s, "cpu_s", 1.0 / secs, 2),
            );
        }
    }
    t
}

/// Orders ramps by knee: the last step under the loss limit, then the best rate under it.
pub fn knee_key(r: &Value) -> (u64, f64) {
    (r["knee"]["last_under"].as_u64().unwrap_or(0), best_rate(r).unwrap_or(0.0))
}

/// Every ramp (round) of `scen` at `workers`, in round order.
fn rounds<'a>(results: &'a [Value], scen: &str, workers: u64) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = results.iter().filter(|r| r["scenario"] == scen && workers_of(r) == workers && !is_half(r)).collect();
    v.sort_by_key(|r| r["round"].as_u64().unwrap_or(1));
    v
}

/// The ramp of `scen` at `workers` that the tables show: of several rounds, the one
/// with the highest knee (interference from other work on the machine only ever
/// lowers a knee).
fn ramp<'a>(results: &'a [Value], scen: &str, workers: u64) -> Option<&'a Value> {
    rounds(results, scen, workers).into_iter().reduce(|a, b| if knee_key(b) > knee_key(a) { b } else { a })
}

/// Mean of a step field over a ramp's steps.
fn mean_of(r: &Value, key: &str) -> Option<f64> {
    let v: Vec<f64> = r["steps"].as_array()?.iter().filter_map(|s| s[key].as_f64()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn half<'a>(results: &'a [Value], scen: &str, workers: u64) -> Option<&'a Value> {
    results.iter().find(|r| r["scenario"] == scen && workers_of(r) == workers && is_half(r))
}

/// The step a knee's `last_under` names (the last under the loss limit).
fn knee_step(r: &Value) -> Option<&Value> {
    let k = r["knee"]["last_under"].as_u64()?;
    r["steps"].as_array()?.iter().find(|s| s["consumers"].as_u64() == Some(k))
}

fn over_step(r: &Value) -> Option<&Value> {
    let k = r["knee"]["first_over"].as_u64()?;
    r["steps"].as_array()?.iter().find(|s| s["consumers"].as_u64() == Some(k))
}

/// The highest forwarded packet rate of a step under the loss limit.
fn best_rate(r: &Value) -> Option<f64> {
    let lim = r["loss_limit_pct"].as_f64().unwrap_or(1.0);
    r["steps"].as_array()?.iter().filter(|s| s["loss_pct"].as_f64().unwrap_or(100.0) <= lim).filter_map(|s| s["out_pps"].as_f64()).reduce(f64::max)
}

fn knee_text(r: &Value) -> String {
    let k = &r["knee"];
    match (k["last_under"].as_u64(), k["first_over"].as_u64()) {
        (Some(a), Some(b)) => format!("{a} / {b}"),
        (Some(a), None) => format!("{a} / none (ramp ended)"),
        (None, Some(b)) => format!("- / {b}"),
        _ => "-".into(),
    }
}

/// Which worker counts appear (sorted).
fn worker_counts(results: &[Value]) -> Vec<u64> {
    let mut w: Vec<u64> = results.iter().map(workers_of).collect();
    w.sort();
    w.dedup();
    w
}

const SCENARIOS: [&str; 3] = ["fanout", "meeting", "audio"];

/// The comparison tables (Markdown).
pub fn summary(results: &[Value]) -> String {
    let mut t = String::new();
    let ws = worker_counts(results);
    let (lo, hi) = (ws.first().copied().unwrap_or(1), ws.last().copied().unwrap_or(1));

    // Knee and scaling.
    let _ = writeln!(t, "**Knee and scaling** (knee: consumers at the last step under the loss limit / the first over; rate: the highest forwarded packets/s of a step under the limit)\n");
    let _ = writeln!(t, "| scenario | knee, {lo} worker | knee, {hi} workers | knee ratio | pkt/s < limit, {lo} worker | pkt/s < limit, {hi} workers | rate ratio | what stopped the {hi}-worker ramp |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|");
    let nrounds = results.iter().filter_map(|r| r["round"].as_u64()).max().unwrap_or(1);
    for scen in SCENARIOS {
        let (Some(a), Some(b)) = (ramp(results, scen, lo), ramp(results, scen, hi)) else { continue };
        let bound = if b["knee"]["first_over"].is_null() { "≥ " } else { "" };
        let kr = match (a["knee"]["last_under"].as_f64(), b["knee"]["last_under"].as_f64()) {
            (Some(x), Some(y)) if x > 0.0 => format!("{bound}{:.2}×", y / x),
            _ => "-".into(),
        };
        let (ra, rb) = (best_rate(a), best_rate(b));
        let rr = match (ra, rb) {
            (Some(x), Some(y)) if x > 0.0 => format!("{bound}{:.2}×", y / x),
            _ => "-".into(),
        };
        let _ = writeln!(
            t,
            "| {scen} | {} | {} | {kr} | {} | {} | {rr} | {} |",
            knee_text(a),
            knee_text(b),
            ra.map(|x| format!("{x:.0}")).unwrap_or("-".into()),
            rb.map(|x| format!("{x:.0}")).unwrap_or("-".into()),
            b["knee"]["reason"].as_str().unwrap_or("")
        );
    }
    if nrounds > 1 {
        let _ = writeln!(t, "\nEvery round (the tables show the round with the highest knee per scenario and worker count):\n");
        let _ = writeln!(t, "| scenario | workers | round | knee | pkt/s < limit | machine busy, mean of steps (cores) | other processes, mean of steps (cores) |");
        let _ = writeln!(t, "|---|---|---|---|---|---|---|");
        for scen in SCENARIOS {
            for w in &ws {
                for r in rounds(results, scen, *w) {
                    let _ = writeln!(
                        t,
                        "| {scen} | {w} | {} | {} | {} | {} | {} |",
                        r["round"].as_u64().unwrap_or(1),
                        knee_text(r),
                        best_rate(r).map(|x| format!("{x:.0}")).unwrap_or("-".into()),
                        mean_of(r, "machine_busy_cores").map(|x| format!("{x:.2}")).unwrap_or("-".into()),
                        mean_of(r, "other_processes_cores").map(|x| format!("{x:.2}")).unwrap_or("-".into()),
                    );
                }
            }
        }
    }

    // Cost per forwarded packet.
    let _ = writeln!(t, "\n**Cost per forwarded packet** (SFU CPU = all SFU threads; bare = the bare data path measured right before the step)\n");
    let _ = writeln!(t, "| scenario | workers | step | SFU µs/pkt | bare µs/pkt | SFU/bare | pkt/s per SFU core | SFU CPU (cores) | generator media thread (cores) | machine busy (cores) | other processes (cores) |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|");
    for scen in SCENARIOS {
        for w in &ws {
            let Some(r) = ramp(results, scen, *w) else { continue };
            let mut rows: Vec<&Value> = Vec::new();
            if scen == "fanout" {
                if let Some(s) = r["steps"].as_array().and_then(|v| v.iter().find(|s| s["consumers"] == 500)) {
                    rows.push(s);
                }
            }
            if let Some(s) = knee_step(r) {
                if !rows.iter().any(|x| std::ptr::eq(*x, s)) {
                    rows.push(s);
                }
            }
            for s in rows {
                let _ = writeln!(
                    t,
                    "| {scen} | {w} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    s["label"].as_str().unwrap_or(""),
                    f(&s["sfu_us_per_out_packet"], 2),
                    f(&s["bare"]["us_per_out_packet"], 2),
                    s["ratio_sfu_to_bare"].as_f64().map(|x| format!("{x:.2}×")).unwrap_or("-".into()),
                    f(&s["pps_per_sfu_core"], 0),
                    f(&s["sfu_core_utilisation"], 2),
                    f(&s["gen_media_utilisation"], 2),
                    f(&s["machine_busy_cores"], 2),
                    f(&s["other_processes_cores"], 2),
                );
            }
        }
    }

    // Latency at half the knee.
    let _ = writeln!(t, "\n**Added latency at half the knee** (half the knee's packet rate: half its consumers; a meeting of N with N(N−1) nearest half; its own run)\n");
    let _ = writeln!(t, "| scenario | workers | step | out pkt/s | loss % | p50 µs | p99 µs | max µs | latency at the knee p50 / p99 / max µs |");
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
    for scen in SCENARIOS {
        for w in &ws {
            let Some(h) = half(results, scen, *w) else { continue };
            let Some(s) = h["steps"].as_array().and_then(|v| v.first()) else { continue };
            let at_knee = ramp(results, scen, *w)
                .and_then(knee_step)
                .map(|k| format!("{} / {} / {}", f(&k["latency_us"]["p50"], 0), f(&k["latency_us"]["p99"], 0), f(&k["latency_us"]["max"], 0)))
                .unwrap_or("-".into());
            let _ = writeln!(
                t,
                "| {scen} | {w} | {} | {} | {} | {} | {} | {} | {at_knee} |",
                s["label"].as_str().unwrap_or(""),
                f(&s["out_pps"], 0),
                f(&s["loss_pct"], 3),
                f(&s["latency_us"]["p50"], 0),
                f(&s["latency_us"]["p99"], 0),
                f(&s["latency_us"]["max"], 0),
            );
        }
    }

    // Memory.
    let _ = writeln!(t, "\n**Memory** (least-squares slopes over a ramp's steps; RSS is the whole process, generator included)\n");
    let _ = writeln!(t, "| scenario | workers | SFU heap kB per consumer stream | SFU heap kB per consumer | RSS kB per consumer |");
    let _ = writeln!(t, "|---|---|---|---|---|");
    for scen in SCENARIOS {
        for w in &ws {
            let Some(r) = ramp(results, scen, *w) else { continue };
            let m = &r["memory"];
            let kb = |v: &Value| v.as_f64().map(|x| format!("{:.1}", x / 1e3)).unwrap_or("-".into());
            let _ = writeln!(
                t,
                "| {scen} | {w} | {} | {} | {} |",
                kb(&m["sfu_heap_bytes_per_consumer_stream"]),
                kb(&m["sfu_heap_bytes_per_consumer"]),
                kb(&m["rss_bytes_per_consumer"])
            );
        }
    }
    for w in &ws {
        for r in rounds(results, "churn", *w) {
            let c = &r["extra"]["churn"];
            let _ = writeln!(
                t,
                "\n- churn, {w} worker(s), round {}: {} cycles of {} peers joining and leaving; SFU heap {:.1} kB per consumer peer while in; after-leave drift {:+.1} kB from cycle 1 to the last (baseline {:.2} MB).",
                r["round"].as_u64().unwrap_or(1),
                c["cycles"].as_array().map(|a| a.len()).unwrap_or(0),
                c["cycles"][0]["peers"],
                c["mean_sfu_heap_per_consumer_peer"].as_f64().unwrap_or(0.0) / 1e3,
                c["drift_bytes"].as_f64().unwrap_or(0.0) / 1e3,
                c["baseline_sfu_heap"].as_f64().unwrap_or(0.0) / 1e6
            );
        }
    }

    // Spread over the workers.
    if hi > 1 {
        let _ = writeln!(t, "\n**{hi} workers: receive transports and time per worker** (per worker, \"w0 / w1\"; CPU and run-queue wait from /proc per thread; busy from the library's `sfu_worker_busy_seconds_total`, the gauge is `sfu_worker_busy_ratio` at the window's end)\n");
        let _ = writeln!(t, "| scenario | step | home worker (send transports) | recv transports | CPU (cores) | waited for a CPU (share of window) | busy (share) | busy ratio gauge | hand-off drops | socket drops | generator media thread (cores) | machine busy (cores) | other processes (cores) |");
        let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for scen in SCENARIOS.iter().copied().chain(["smoke"]) {
            let Some(r) = ramp(results, scen, hi) else { continue };
            let mut rows: Vec<&Value> = Vec::new();
            rows.extend(half(results, scen, hi).and_then(|h| h["steps"].as_array()?.first()));
            rows.extend(knee_step(r));
            rows.extend(over_step(r));
            if rows.is_empty() {
                rows.extend(r["steps"].as_array().and_then(|v| v.last()));
            }
            for s in rows {
                let secs = s["secs"].as_f64().unwrap_or(1.0);
                let home = s["workers"]
                    .as_array()
                    .map(|v| v.iter().enumerate().filter(|(_, w)| w["send_transports"].as_u64().unwrap_or(0) > 0).map(|(i, _)| i.to_string()).collect::<Vec<_>>().join(","))
                    .unwrap_or_default();
                let _ = writeln!(
                    t,
                    "| {scen} | {} | {home} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    s["label"].as_str().unwrap_or(""),
                    per_worker(s, "recv_transports", 1.0, 0),
                    per_worker(s, "cpu_s", 1.0 / secs, 2),
                    per_worker(s, "runqueue_wait_share", 1.0, 2),
                    per_worker(s, "busy_share", 1.0, 2),
                    per_worker(s, "busy_ratio_gauge", 1.0, 2),
                    per_worker(s, "handoff_dropped", 1.0, 0),
                    per_worker(s, "udp_drops", 1.0, 0),
                    f(&s["gen_media_utilisation"], 2),
                    f(&s["machine_busy_cores"], 2),
                    f(&s["other_processes_cores"], 2),
                );
            }
        }
    }
    t
}

fn knees(results: &[Value]) -> String {
    let mut t = String::new();
    for r in results.iter().filter(|r| !is_half(r) && r["scenario"] != "churn") {
        let scen = r["scenario"].as_str().unwrap_or("?");
        let k = &r["knee"];
        let _ = writeln!(
            t,
            "- {scen}, {} worker(s): last step under the loss limit: {} consumers; first over: {}; {}. SFU heap slope {} kB per consumer stream.",
            workers_of(r),
            k["last_under"],
            k["first_over"],
            k["reason"].as_str().unwrap_or(""),
            f(&(r["memory"]["sfu_heap_bytes_per_consumer_stream"].as_f64().map(|x| x / 1e3).into()), 1),
        );
    }
    t
}

pub fn report(files: &[String], out_dir: &str) -> Result<(), String> {
    let mut results = Vec::new();
    for p in files {
        let t = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
        results.push(serde_json::from_str::<Value>(&t).map_err(|e| format!("{p}: {e}"))?);
    }
    std::fs::create_dir_all(out_dir).map_err(|e| e.to_string())?;
    let all = json!({"results": results});
    std::fs::write(format!("{out_dir}/results.json"), serde_json::to_string_pretty(&all).unwrap()).map_err(|e| e.to_string())?;
    let mut md = summary(&results);
    for w in worker_counts(&results) {
        let mut of: Vec<Value> = Vec::new();
        for scen in SCENARIOS.iter().copied().chain(["smoke"]) {
            of.extend(ramp(&results, scen, w).cloned());
            of.extend(half(&results, scen, w).cloned());
        }
        let _ = write!(md, "\n**Every step, {w} worker{}**\n\n{}", if w == 1 { "" } else { "s" }, table(&of));
    }
    md.push('\n');
    let shown: Vec<Value> = worker_counts(&results).iter().flat_map(|w| SCENARIOS.iter().filter_map(|s| ramp(&results, s, *w).cloned()).collect::<Vec<_>>()).collect();
    md.push_str(&knees(&shown));
    std::fs::write(format!("{out_dir}/table.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    plot(&results, out_dir);
    Ok(())
}

/// plot.png: one column per scenario. Top: forwarded packets/s (left axis) and loss %
/// (right axis) against consumer streams, per worker count. Bottom: SFU µs of CPU per
/// forwarded packet, per worker count, and the bare path's.
fn plot(results: &[Value], out_dir: &str) {
    let scens: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| results.iter().any(|r| r["scenario"] == *s && !is_half(r) && r["steps"].as_array().is_some_and(|v| v.len() > 1)))
        .collect();
    if scens.is_empty() {
        return;
    }
    let ws = worker_counts(results);
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let mut gp = String::new();
    let _ = writeln!(gp, "set terminal pngcairo size {},900 font 'sans,10'", 520 * scens.len());
    let _ = writeln!(gp, "set output '{out_dir}/plot.png'");
    let _ = writeln!(gp, "set multiplot layout 2,{}", scens.len());
    let _ = writeln!(gp, "set key below\nset grid\nset xlabel 'consumer streams (a viewer of audio + video = 2)'");
    let data_of = |scen: &str, w: u64| -> Option<String> {
        let r = ramp(results, scen, w)?;
        let data = format!("{out_dir}/plot-{scen}-w{w}.dat");
        let mut d = String::from("# streams out_pps sfu_us_per_pkt loss_pct bare_us_per_pkt\n");
        for s in r["steps"].as_array()? {
            let _ = writeln!(
                d,
                "{} {} {} {} {}",
                s["consumer_streams"],
                s["out_pps"].as_f64().unwrap_or(0.0),
                s["sfu_us_per_out_packet"].as_f64().unwrap_or(f64::NAN),
                s["loss_pct"].as_f64().unwrap_or(0.0),
                s["bare"]["us_per_out_packet"].as_f64().filter(|v| *v > 0.0).unwrap_or(f64::NAN),
            );
        }
        let _ = std::fs::write(&data, d);
        Some(data)
    };
    let files: Vec<Vec<(u64, String)>> = scens.iter().map(|s| ws.iter().filter_map(|w| Some((*w, data_of(s, *w)?))).collect()).collect();
    let _ = writeln!(gp, "set ylabel 'forwarded packets/s'\nset y2label 'loss %'\nset ytics nomirror\nset y2tics\nset yrange [0:*]\nset y2range [0:*]\nset format y '%.0s%c'");
    for (scen, fs) in scens.iter().zip(&files) {
        let mut parts = Vec::new();
        for (i, (w, file)) in fs.iter().enumerate() {
            let c = colors[i % colors.len()];
            parts.push(format!("'{file}' u 1:2 w lp lw 2 pt 7 lc rgb '{c}' t 'forwarded pkt/s, {w} worker{}'", if *w == 1 { "" } else { "s" }));
            parts.push(format!("'{file}' u 1:4 axes x1y2 w lp lw 1 dt 2 pt 9 lc rgb '{c}' t 'loss %, {w} worker{} (right)'", if *w == 1 { "" } else { "s" }));
        }
        let _ = writeln!(gp, "set title '{scen}: forwarded packets/s and loss'\nplot {}", parts.join(", "));
    }
    let _ = writeln!(gp, "unset y2label\nunset y2tics\nset ytics mirror\nset format y '%g'\nset ylabel 'µs of CPU per forwarded packet'");
    for (scen, fs) in scens.iter().zip(&files) {
        let mut parts = Vec::new();
        for (i, (w, file)) in fs.iter().enumerate() {
            let c = colors[i % colors.len()];
            parts.push(format!("'{file}' u 1:3 w lp lw 2 pt 5 lc rgb '{c}' t 'SFU, {w} worker{}'", if *w == 1 { "" } else { "s" }));
            parts.push(format!("'{file}' u 1:5 w lp lw 1 dt 3 pt 4 lc rgb '{c}' t 'bare path (in the {w}-worker run)'"));
        }
        let _ = writeln!(gp, "set title '{scen}: CPU per forwarded packet'\nplot {}", parts.join(", "));
    }
    let _ = writeln!(gp, "unset multiplot");
    let script = format!("{out_dir}/plot.gp");
    let _ = std::fs::write(&script, gp);
    match Command::new("gnuplot").arg(&script).status() {
        Ok(s) if s.success() => println!("wrote {out_dir}/plot.png"),
        Ok(s) => eprintln!("gnuplot failed ({s}); the script is {script}"),
        Err(e) => eprintln!("gnuplot not available ({e}); run bench/setup.sh; the script is {script}"),
    }
}
