//! Reporters for `forge realize`: live progress on a terminal, plain lines otherwise, a JSON event
//! stream for programs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use forge_core::text::escape_lines;
use forge_realize::{Event, How, JobState, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::printer::Printer;

/// `<hash>-name-version` → `name-version`, for display.
fn short(node: &str) -> &str {
    node.get(forge_store::HASH_LEN + 1..).unwrap_or(node)
}

fn print_failure(printer: Printer, e: &Event) {
    let Event::Failed {
        node,
        phase,
        command,
        message,
        log,
        tail,
        ..
    } = e
    else {
        return;
    };
    printer.error(&format!("{} failed: {message}", short(node)));
    if let Some(p) = phase {
        printer.info(&format!("  phase:   {p}"));
    }
    if let Some(c) = command {
        printer.info(&format!("  command: {c}"));
    }
    if !tail.is_empty() {
        printer.info(&format!("  last {} log lines:", tail.len()));
        for l in tail {
            printer.info(&format!("  │ {l}"));
        }
    }
    if let Some(l) = log {
        printer.info(&format!("  log:     {}", l.display()));
    }
}

/// Plain lines on stderr (not a terminal, or `--quiet`).
#[derive(Debug)]
pub struct Plain {
    printer: Printer,
}

impl Plain {
    pub fn new(printer: Printer) -> Self {
        Self { printer }
    }
}

impl Reporter for Plain {
    fn event(&self, e: &Event) {
        match e {
            Event::Planned {
                total,
                valid,
                to_build,
            } => {
                if *to_build == 0 {
                    self.printer
                        .info(&format!("all {total} nodes are valid; nothing to build"));
                } else {
                    self.printer.info(&format!(
                        "{to_build} of {total} nodes to build ({valid} valid)"
                    ));
                }
            }
            Event::Started { node } => self.printer.info(&format!("building {}", short(node))),
            Event::Finished { node, seconds, how } => match how {
                How::ByOtherProcess => self.printer.info(&format!(
                    "{} was built by another forge process",
                    short(node)
                )),
                How::Substituted => {}
                _ => self
                    .printer
                    .info(&format!("built {} in {seconds:.1}s", short(node))),
            },
            Event::Substituted { .. } => self.printer.info(&substituted_line(e)),
            Event::Job { .. } => self.printer.info(&job_line(e)),
            Event::Note { node, message } => {
                self.printer.warn(&format!("{}: {message}", short(node)))
            }
            Event::Failed { .. } => print_failure(self.printer, e),
            Event::Skipped { .. } => self.printer.warn(&skipped_line(e)),
            Event::Phase { .. } | Event::Line { .. } => {}
        }
    }
}

/// One JSON object per line on stdout (the printer's JSON-lines channel); log lines are left out
/// (they are in `forge log`).
#[derive(Debug)]
pub struct Json {
    printer: Printer,
    start: Instant,
}

impl Json {
    pub fn new(printer: Printer) -> Self {
        Self {
            printer,
            start: Instant::now(),
        }
    }
}

impl Reporter for Json {
    fn event(&self, e: &Event) {
        if matches!(e, Event::Line { .. }) {
            return;
        }
        let mut v = serde_json::to_value(e).expect("events serialize");
        v["elapsed"] =
            serde_json::json!((self.start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        self.printer.json_line(&v);
    }
}

struct Running {
    bar: ProgressBar,
    phase: String,
    started: Instant,
}

/// Live display (drawn on the printer's progress target): a header with counts and one line per running build (phase, elapsed time, last
/// log line).
pub struct Live {
    printer: Printer,
    multi: MultiProgress,
    header: ProgressBar,
    state: Mutex<BTreeMap<forge_core::StoreName, Running>>,
    /// The header's text from the plan, and the nodes whose Slurm jobs wait in the queue.
    queue: Mutex<(String, std::collections::BTreeSet<forge_core::StoreName>)>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Live {
    pub fn new(printer: Printer) -> Self {
        Self::with_target(printer, printer.progress_target())
    }

    /// Live progress drawn on `target` (a terminal, or a recorder in tests).
    pub(crate) fn with_target(printer: Printer, target: indicatif::ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        // Shown once the plan says how many nodes there are to build (never `0/0`).
        let header = ProgressBar::hidden();
        header.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30}] {pos}/{len} built  {elapsed_precise}  {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        header.set_prefix("realize");
        Self {
            printer,
            multi,
            header,
            state: Mutex::new(BTreeMap::new()),
            queue: Mutex::new((String::new(), Default::default())),
        }
    }

    fn message(name: &str, r: &Running, line: &str) -> String {
        let mut line: String = line.chars().filter(|c| !c.is_control()).collect();
        if line.len() > 60 {
            let cut = line.char_indices().nth(60).map_or(line.len(), |(i, _)| i);
            line.truncate(cut);
            line.push('…');
        }
        format!(
            "{:<28} {:<10} {:>5.0}s  {line}",
            short(name),
            r.phase,
            r.started.elapsed().as_secs_f64()
        )
    }
}

impl Reporter for Live {
    fn event(&self, e: &Event) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match e {
            Event::Planned {
                total, to_build, ..
            } => {
                self.header.set_length(*to_build as u64);
                self.set_header(
                    Some(format!("{} nodes, {} valid", total, total - to_build)),
                    None,
                );
                if *to_build > 0 {
                    self.multi.insert(0, self.header.clone());
                    self.header.enable_steady_tick(Duration::from_millis(200));
                }
            }
            Event::Started { node } => {
                self.set_header(None, Some((node, false)));
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {msg}").expect("valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(150));
                let r = Running {
                    bar,
                    phase: "start".into(),
                    started: Instant::now(),
                };
                r.bar.set_message(Self::message(node, &r, ""));
                state.insert(node.clone(), r);
            }
            Event::Phase { node, phase } => {
                if let Some(r) = state.get_mut(node) {
                    r.phase.clone_from(phase);
                    r.bar.set_message(Self::message(node, r, ""));
                }
            }
            Event::Line { node, line } => {
                if let Some(r) = state.get(node) {
                    r.bar.set_message(Self::message(node, r, line));
                }
            }
            Event::Finished { node, seconds, how } => {
                self.set_header(None, Some((node, false)));
                if let Some(r) = state.remove(node) {
                    r.bar.finish_and_clear();
                    self.multi.remove(&r.bar);
                }
                self.header.inc(1);
                let text = match how {
                    How::ByOtherProcess => {
                        format!("{} was built by another forge process", short(node))
                    }
                    How::Substituted => return,
                    _ => format!("built {} in {seconds:.1}s", short(node)),
                };
                let _ = self.multi.println(text);
            }
            Event::Substituted { .. } => {
                let _ = self.multi.println(substituted_line(e));
            }
            // Queued jobs are counted in the header; where a job runs is worth a line.
            Event::Job { node, state, .. } => match state {
                JobState::Submitted | JobState::Attached => {
                    self.set_header(None, Some((node, true)));
                    if *state == JobState::Attached {
                        let _ = self.multi.println(job_line(e));
                    }
                }
                JobState::Running => {
                    let _ = self.multi.println(job_line(e));
                }
            },
            Event::Note { node, message } => {
                let _ = self.multi.println(format!(
                    "warning: {}: {}",
                    short(node),
                    escape_lines(message)
                ));
            }
            Event::Failed { node, .. } => {
                self.set_header(None, Some((node, false)));
                if let Some(r) = state.remove(node) {
                    r.bar.finish_and_clear();
                    self.multi.remove(&r.bar);
                }
                self.multi.suspend(|| print_failure(self.printer, e));
            }
            Event::Skipped { node, .. } => {
                self.set_header(None, Some((node, false)));
                let _ = self.multi.println(skipped_line(e));
            }
        }
    }
}

impl Live {
    /// Sets the header's text from the plan (`base`), and counts `node` in (`true`) or out of
    /// the Slurm queue; the header then says how many jobs wait.
    fn set_header(&self, base: Option<String>, node: Option<(&forge_core::StoreName, bool)>) {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = base {
            q.0 = b;
        }
        match node {
            Some((n, true)) => {
                q.1.insert(n.clone());
            }
            // Not counted: nothing changes.
            Some((n, false)) if !q.1.remove(n) => return,
            Some(_) | None => {}
        }
        let msg = if q.1.is_empty() {
            q.0.clone()
        } else {
            format!("{}, {} queued in Slurm", q.0, q.1.len())
        };
        self.header.set_message(msg);
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.header.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// `hello-1.0: Slurm job 12 submitted (after 10, 11)`, `… attached`, `… running on node7`.
fn job_line(e: &Event) -> String {
    let Event::Job {
        node,
        job,
        state,
        detail,
    } = e
    else {
        return String::new();
    };
    let what = match state {
        JobState::Submitted if detail.is_empty() => "submitted".to_owned(),
        JobState::Submitted => format!("submitted (after {})", detail.join(", ")),
        JobState::Attached => "attached to (submitted earlier)".to_owned(),
        JobState::Running => format!("running on {}", detail.join(",")),
    };
    format!("{}: Slurm job {job} {what}", short(node))
}

/// `skipped N: its dependency D failed`, or `… needs D (via V), which failed`.
fn skipped_line(e: &Event) -> String {
    let Event::Skipped { node, because, via } = e else {
        return String::new();
    };
    match via {
        None => format!(
            "skipped {}: its dependency {} failed",
            short(node),
            short(because)
        ),
        Some(v) => format!(
            "skipped {}: it needs {} (via {}), which failed",
            short(node),
            short(because),
            short(v)
        ),
    }
}

/// `substituted NAME from URL (signed by FPR)`.
fn substituted_line(e: &Event) -> String {
    let Event::Substituted {
        node,
        from,
        signed_by,
    } = e
    else {
        return String::new();
    };
    let signed = match signed_by {
        Some(f) => format!("signed by {f}"),
        None => "unsigned or untrusted, accepted with --no-check-signature".to_owned(),
    };
    format!("substituted {} from {from} ({signed})", short(node))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A terminal that records what is written to it.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<String>>);

    impl indicatif::TermLike for Recorder {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn live(rec: &Recorder) -> Live {
        let printer = Printer::new(crate::args::ColorChoice::Never, false);
        Live::with_target(
            printer,
            indicatif::ProgressDrawTarget::term_like(Box::new(rec.clone())),
        )
    }

    fn node(n: &str) -> forge_core::StoreName {
        forge_core::StoreName::parse(&format!("{}-{n}-1.0", "a".repeat(32))).unwrap()
    }

    #[test]
    fn the_header_counts_only_what_is_built_and_never_shows_0_of_0() {
        // Nothing to build: no header at all, even after ticks.
        let rec = Recorder::default();
        let l = live(&rec);
        l.event(&Event::Planned {
            total: 4,
            valid: 4,
            to_build: 0,
        });
        std::thread::sleep(Duration::from_millis(450));
        drop(l);
        let drawn = rec.0.lock().unwrap().clone();
        assert!(!drawn.contains("built"), "{drawn:?}");

        // Three to build: `0/3`, then `1/3`; never `0/0`.
        let rec = Recorder::default();
        let l = live(&rec);
        l.event(&Event::Planned {
            total: 4,
            valid: 1,
            to_build: 3,
        });
        l.event(&Event::Started { node: node("a") });
        std::thread::sleep(Duration::from_millis(450));
        l.event(&Event::Finished {
            node: node("a"),
            seconds: 0.1,
            how: forge_realize::How::Built,
        });
        std::thread::sleep(Duration::from_millis(450));
        drop(l);
        let drawn = rec.0.lock().unwrap().clone();
        assert!(
            drawn.contains("0/3 built") && drawn.contains("1/3 built"),
            "{drawn:?}"
        );
        assert!(!drawn.contains("0/0"), "{drawn:?}");
    }

    #[test]
    fn the_header_counts_slurm_jobs_waiting_in_the_queue() {
        let rec = Recorder::default();
        let l = live(&rec);
        l.event(&Event::Planned {
            total: 3,
            valid: 0,
            to_build: 3,
        });
        for n in ["a", "b"] {
            l.event(&Event::Job {
                node: node(n),
                job: "7".into(),
                state: JobState::Submitted,
                detail: Vec::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(450));
        l.event(&Event::Started { node: node("a") });
        l.event(&Event::Job {
            node: node("a"),
            job: "7".into(),
            state: JobState::Running,
            detail: vec!["node7".into()],
        });
        std::thread::sleep(Duration::from_millis(450));
        drop(l);
        let drawn = rec.0.lock().unwrap().clone();
        assert!(
            drawn.contains("3 nodes, 0 valid, 2 queued in Slurm")
                && drawn.contains("3 nodes, 0 valid, 1 queued in Slurm")
                && drawn.contains("a-1.0: Slurm job 7 running on node7"),
            "{drawn:?}"
        );
    }
}
