//! Results as a Markdown table, a combined JSON file and a plot (gnuplot, if present).

use std::fmt::Write;
use std::process::Command;

use serde_json::{json, Value};

fn f(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.digits$}"),
        None => "-".into(),
    }
}

/// One row per measured step of every result.
pub fn table(results: &[Value]) -> String {
    let mut t = String::new();
    t.push_str("| scenario | step | consumers | consumer streams | out pkt/s | SFU CPU (cores) | pkt/s per SFU core | SFU µs/pkt | bare µs/pkt | SFU/bare | loss % | worst consumer loss % | latency p50 / p99 / max µs | SFU heap kB/stream | join→media p50 / max ms |\n");
    t.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
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
            let _ = writeln!(
                t,
                "| {scen} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {heap} | {} / {} |",
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
            );
        }
    }
    t
}

fn knees(results: &[Value]) -> String {
    let mut t = String::new();
    for r in results {
        let scen = r["scenario"].as_str().unwrap_or("?");
        if scen == "churn" {
            let c = &r["extra"]["churn"];
            let _ = writeln!(
                t,
                "- churn: {} cycles of {} peers joining and leaving; SFU heap {:.1} kB per consumer peer while in; after-leave drift {:+.1} kB from cycle 1 to the last (baseline {:.2} MB).",
                c["cycles"].as_array().map(|a| a.len()).unwrap_or(0),
                c["cycles"][0]["peers"],
                c["mean_sfu_heap_per_consumer_peer"].as_f64().unwrap_or(0.0) / 1e3,
                c["drift_bytes"].as_f64().unwrap_or(0.0) / 1e3,
                c["baseline_sfu_heap"].as_f64().unwrap_or(0.0) / 1e6
            );
            continue;
        }
        let k = &r["knee"];
        let _ = writeln!(
            t,
            "- {scen}: last step under the loss limit: {} consumers; first over: {}; {}. SFU heap slope {} kB per consumer stream.",
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
    let md = format!("{}\n{}", table(&results), knees(&results));
    std::fs::write(format!("{out_dir}/table.md"), &md).map_err(|e| e.to_string())?;
    println!("{md}");
    plot(&results, out_dir);
    Ok(())
}

/// plot.png: per scenario, forwarded packets/s and packets/s per SFU core (left axis)
/// and loss % (right axis) against the number of consumer streams.
fn plot(results: &[Value], out_dir: &str) {
    let ramps: Vec<&Value> = results.iter().filter(|r| r["steps"].as_array().is_some_and(|s| s.len() > 1)).collect();
    if ramps.is_empty() {
        return;
    }
    let mut gp = String::new();
    let _ = writeln!(gp, "set terminal pngcairo size {},600 font 'sans,10'", 520 * ramps.len());
    let _ = writeln!(gp, "set output '{out_dir}/plot.png'");
    let _ = writeln!(gp, "set multiplot layout 1,{}", ramps.len());
    let _ = writeln!(gp, "set key below\nset grid\nset xlabel 'consumer streams (a viewer of audio + video = 2)'\nset ylabel 'packets/s'\nset y2label 'loss %'\nset ytics nomirror\nset y2tics\nset y2range [0:*]\nset yrange [0:*]\nset format y '%.0s%c'");
    for r in ramps {
        let scen = r["scenario"].as_str().unwrap_or("?");
        let data = format!("{out_dir}/plot-{scen}.dat");
        let mut d = String::from("# streams out_pps pps_per_core loss_pct bare_pps_per_core\n");
        for s in r["steps"].as_array().unwrap() {
            let bare = s["bare"]["us_per_out_packet"].as_f64().filter(|v| *v > 0.0).map(|v| format!("{}", 1e6 / v)).unwrap_or("NaN".into());
            let _ = writeln!(
                d,
                "{} {} {} {} {bare}",
                s["consumer_streams"],
                s["out_pps"].as_f64().unwrap_or(0.0),
                s["pps_per_sfu_core"].as_f64().unwrap_or(0.0),
                s["loss_pct"].as_f64().unwrap_or(0.0)
            );
        }
        let _ = std::fs::write(&data, d);
        let _ = writeln!(
            gp,
            "set title '{scen}'\nplot '{data}' u 1:2 w lp lw 2 pt 7 t 'forwarded pkt/s', '' u 1:3 w lp lw 2 pt 5 t 'pkt/s per core of SFU CPU', '' u 1:5 w lp lw 1 dt 2 pt 4 lc rgb 'gray40' t 'bare data path, pkt/s per core', '' u 1:4 axes x1y2 w lp lw 2 pt 9 lc rgb 'red' t 'loss % (right axis)'"
        );
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
