//! The perf harness: runs shardpool's benchmark scenarios without criterion
//! and writes a markdown report (with the machine at its head) and SVG plots.
//!
//! ```text
//! cargo run --release -p perf [-- [--long] [--out DIR]]
//! ```
//!
//! Every figure is printed next to a baseline measured in the same run, and
//! as a ratio to it. On a VM the host may move the vCPUs apart for a while,
//! so the floor (a cache line bounced between the two cores) is measured
//! before and after each scenario and shown beside it. The default run takes
//! about a minute and a half; `--long` runs about five times longer for
//! steadier figures.

#[path = "../../benches/common/mod.rs"]
mod common;

mod alloc;
mod break_even;
mod machine;
mod measure;
mod plot;
mod resources;
mod rt;
mod table;
mod throughput;

use machine::{load_average, utc_now, Machine};
use measure::{fmt_ns, fmt_x, median, Budget, Floors};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use table::Table;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// Callers registered at once in the memory scenario.
const MEMORY_CALLERS: usize = 64;

struct Args {
    long: bool,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { long: false, out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results")) };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--long" => args.long = true,
            "--out" => args.out = it.next().ok_or("--out needs a directory")?.into(),
            "-h" | "--help" => {
                return Err("usage: perf [--long] [--out DIR | DIR]\n  \
                            --long      about five times longer, steadier figures\n  \
                            --out DIR   where report.md and the SVG plots go (default perf/results/)"
                    .into())
            }
            s if !s.starts_with('-') => args.out = s.into(),
            s => return Err(format!("unknown argument {s:?} (try --help)")),
        }
    }
    Ok(args)
}

/// One stated target, and whether this run met it.
struct Target {
    what: &'static str,
    measured: String,
    met: bool,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    let budget = Budget { scale: if args.long { 10.0 } else { 2.0 } };
    let started = Instant::now();
    let cpu_start = measure::CpuSample::now();
    let load_start = load_average();
    let date = utc_now();
    let machine = Machine::probe();
    eprintln!(
        "perf: {} run, results into {}",
        if args.long { "long" } else { "default" },
        args.out.display()
    );
    // Calibrate the work once, on an unpinned thread, before anything runs.
    common::place::on_driver(None, common::work::ns_per_round);

    let mut floors = Floors::default();
    eprintln!("round trips");
    let rt = rt::run(budget, &mut floors);
    eprintln!("batches");
    let batches = throughput::batches(budget, &mut floors);
    eprintln!("randoms vs rayon");
    let randoms = throughput::randoms(budget, &mut floors);
    eprintln!("break-even");
    let be = break_even::run(budget, &mut floors);
    eprintln!("many callers");
    let callers = throughput::many_callers(budget, &mut floors);
    eprintln!("resources");
    let res = resources::run(budget);
    let wall = started.elapsed();
    let load_end = load_average();
    let others = cpu_start.others_since();

    // Targets (reported, never asserted).
    use rt::Subject;
    use throughput::{MTP, RTRB, SP};
    let sp_rt = rt.mean(Subject::Shardpool);
    let sp_b = batches.get(SP, 1, 1024);
    let shardpool_allocs = res.allocs.iter().map(|r| r.shardpool).fold(0.0, f64::max);
    let targets = [
        Target {
            what: "round trip within 2.5× of the raw rtrb pair",
            measured: format!(
                "{} (mean), {} (p50)",
                fmt_x(sp_rt / rt.mean(Subject::Rtrb)),
                fmt_x(rt.p50(Subject::Shardpool) / rt.p50(Subject::Rtrb))
            ),
            met: sp_rt / rt.mean(Subject::Rtrb) <= 2.5,
        },
        Target {
            what: "round trip ≥ 5× faster than messaging_thread_pool",
            measured: format!(
                "{} (mean), {} (p50)",
                fmt_x(rt.mean(Subject::Mtp) / sp_rt),
                fmt_x(rt.p50(Subject::Mtp) / rt.p50(Subject::Shardpool))
            ),
            met: rt.mean(Subject::Mtp) / sp_rt >= 5.0,
        },
        Target {
            what: "batch throughput (1 worker, 1024) ≥ 60% of the raw rtrb pair",
            measured: format!("{:.0}%", 100.0 * batches.get(RTRB, 1, 1024) / sp_b),
            met: batches.get(RTRB, 1, 1024) / sp_b >= 0.6,
        },
        Target {
            what: "batch throughput (1 worker, 1024) ≥ 4× messaging_thread_pool",
            measured: fmt_x(batches.get(MTP, 1, 1024) / sp_b),
            met: batches.get(MTP, 1, 1024) / sp_b >= 4.0,
        },
        Target {
            what: "break-even speed-up ≥ 1.5× at W = 300 ns",
            measured: fmt_x(be.speedup(300)),
            met: be.speedup(300) >= 1.5,
        },
        Target {
            what: "break-even speed-up ≥ 1.8× at W = 1 µs",
            measured: fmt_x(be.speedup(1_000)),
            met: be.speedup(1_000) >= 1.8,
        },
        Target {
            what: "idle CPU < 1% of a core",
            measured: format!("{:.3}%", res.idle_percent("shardpool")),
            met: res.idle_percent("shardpool") < 1.0,
        },
        Target {
            what: "zero allocations per request",
            measured: format!("{shardpool_allocs:.3} (worst path)"),
            met: shardpool_allocs == 0.0,
        },
    ];

    let mut md = String::from("# shardpool performance report\n\n");
    let mut head = Table::new(&["", ""]);
    for (k, v) in [
        ("CPU", machine.cpu.clone()),
        (
            "cores",
            format!("{} online; the process may use {:?}", machine.cores_online, machine.process_cores),
        ),
        ("kernel", machine.kernel.clone()),
        ("rustc", machine.rustc.to_string()),
        (
            "clock",
            format!(
                "{}; two back-to-back `Instant::now()` ≥ {:.0} ns",
                machine.clocksource, machine.timer_ns
            ),
        ),
        ("load average (1, 5, 15 min)", format!("{load_start} at the start, {load_end} at the end")),
        (
            "other processes",
            format!(
                "used {others:.1}% of the machine during the run{}",
                if others >= 5.0 { " ⚠ (figures are disturbed; rerun on a quiet machine)" } else { "" }
            ),
        ),
        ("date", date),
        ("command", format!("`cargo run --release -p perf --{}`", if args.long { " --long" } else { "" })),
        ("wall time", format!("{:.0} s", wall.as_secs_f64())),
    ] {
        head.row(vec![k.to_string(), v]);
    }
    md += &head.markdown();
    let mut fl: Vec<f64> = floors.samples.iter().map(|(_, ns)| *ns).collect();
    let (lo, hi) = fl.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    md += &format!(
        "\nThe floor (a cache line bounced between the caller's core and worker 0's) was measured {} times \
         in this run: min {}, median {}, max {}. Figures taken while it was high (⚠ beside a floor) are \
         slower for reasons outside the code under test; so are those beside which *others N% ⚠* \
         says how much of the machine other processes took meanwhile.\n\n",
        fl.len(),
        fmt_ns(lo),
        fmt_ns(median(&mut fl)),
        fmt_ns(hi)
    );

    md += "## Targets (reported, not asserted)\n\n";
    md += "Judged on the means (medians of timed runs); break-even on back-to-back batches.\n\n";
    let mut t = Table::new(&["target", "this run", "met"]);
    for tg in &targets {
        t.row(vec![tg.what.into(), tg.measured.clone(), if tg.met { "yes" } else { "**no**" }.into()]);
    }
    md += &t.markdown();
    md += "\n";
    md += &rt.markdown();
    md += "\n![round-trip latency percentiles](latency.svg)\n\n![round-trip latency after idle gaps](latency_after_idle.svg)\n\n";
    md += &batches.markdown();
    md += "\n";
    md += &randoms.markdown();
    md += "\n";
    md += &be.markdown();
    md += "\n![break-even speed-up](break_even.svg)\n\n";
    md += &callers.markdown();
    md += "\n";
    md += &res.markdown(MEMORY_CALLERS);
    md += "\n<details><summary>Every floor measurement, in order</summary>\n\n";
    let mut t = Table::new(&["when", "floor"]);
    for (label, ns) in &floors.samples {
        t.row(vec![label.clone(), fmt_ns(*ns)]);
    }
    md += &t.markdown();
    md += "\n</details>\n";

    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        print!("{md}");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    let b2b: Vec<(String, [f64; 5])> =
        rt.rows.iter().map(|r| (r.subject.name().to_string(), r.latency.points())).collect();
    let mut idle: Vec<(String, [f64; 5])> = Vec::new();
    for r in rt.rows.iter().filter(|r| r.subject == Subject::Shardpool) {
        idle.push(("shardpool, back to back".into(), r.latency.points()));
    }
    for g in &rt.gaps {
        if matches!(g.subject, Subject::Shardpool | Subject::Mtp) {
            idle.push((
                format!("{}, after {}", g.subject.name(), fmt_ns(g.gap.as_nanos() as f64)),
                g.latency.points(),
            ));
        }
    }
    for (file, result) in [
        (
            "latency.svg",
            plot::latency(&args.out.join("latency.svg"), "Round-trip latency, back to back", &b2b),
        ),
        (
            "latency_after_idle.svg",
            plot::latency(
                &args.out.join("latency_after_idle.svg"),
                "Round-trip latency after an idle gap",
                &idle,
            ),
        ),
        ("break_even.svg", plot::break_even(&args.out.join("break_even.svg"), &be)),
    ] {
        if let Err(e) = result {
            eprintln!("plot {file}: {e}");
            ok = false;
        }
    }
    let report = args.out.join("report.md");
    if let Err(e) = std::fs::write(&report, &md) {
        eprintln!("cannot write {}: {e}", report.display());
        ok = false;
    }
    print!("{md}");
    eprintln!("perf: done in {:.0} s; report in {}", wall.as_secs_f64(), report.display());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
