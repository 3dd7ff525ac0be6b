//! Engine events → what the user sees: a bar per image on a terminal, a line every few seconds otherwise,
//! nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_copy::{Event, EventSink};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Images copy at the same time: their bars share the terminal.
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bar,
    Lines,
    Quiet,
}

impl Mode {
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        }
    }
}

#[derive(Default)]
struct Counts {
    nodes: u64,
    done: u64,
    bytes_total: u64,
    bytes_done: u64,
}

/// Progress of one image.
pub struct ImageProgress {
    mode: Mode,
    label: String,
    bar: Option<ProgressBar>,
    counts: Mutex<Counts>,
    last_line: Mutex<Instant>,
    started: Instant,
}

impl ImageProgress {
    pub fn new(mode: Mode, label: &str) -> Arc<ImageProgress> {
        let bar = (mode == Mode::Bar).then(|| {
            let b = bars().add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Arc::new(ImageProgress {
            mode,
            label: label.to_string(),
            bar,
            counts: Mutex::new(Counts::default()),
            last_line: Mutex::new(Instant::now()),
            started: Instant::now(),
        })
    }

    pub fn sink(self: &Arc<Self>) -> EventSink {
        let me = self.clone();
        Arc::new(move |e: &Event| me.on_event(e))
    }

    fn on_event(&self, e: &Event) {
        if self.mode == Mode::Quiet {
            return;
        }
        let mut c = self.counts.lock().expect("progress lock");
        match e {
            Event::Discovered { size, .. } => {
                c.nodes += 1;
                c.bytes_total += size;
                if let Some(b) = &self.bar {
                    b.inc_length(*size);
                }
            }
            Event::Progress { bytes, .. } => {
                c.bytes_done += bytes;
                if let Some(b) = &self.bar {
                    b.inc(*bytes);
                }
            }
            Event::Done { size, outcome, .. } => {
                c.done += 1;
                if *outcome != ferry_copy::BlobOutcome::Fetched
                    && *outcome != ferry_copy::BlobOutcome::Cached
                {
                    // Nothing streamed: count the node's bytes as done so the bar reaches the end.
                    c.bytes_done += size;
                    if let Some(b) = &self.bar {
                        b.inc(*size);
                    }
                }
            }
            Event::Retrying {
                digest,
                attempt,
                error,
            } => {
                // The image starts over: what was counted is counted again.
                *c = Counts::default();
                if let Some(b) = &self.bar {
                    b.set_length(0);
                    b.set_position(0);
                }
                let line = format!(
                    "{}: attempt {attempt} failed ({error}); retrying {digest} with one copy at a time",
                    self.label
                );
                match &self.bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
        }
        if let Some(b) = &self.bar {
            b.set_message(format!("{}/{} blobs", c.done, c.nodes));
        } else {
            let mut last = self.last_line.lock().expect("progress lock");
            if last.elapsed() >= Duration::from_secs(2) {
                *last = Instant::now();
                eprintln!(
                    "{}: {}/{} blobs, {} of {} MB",
                    self.label,
                    c.done,
                    c.nodes,
                    c.bytes_done / 1_000_000,
                    c.bytes_total / 1_000_000
                );
            }
        }
    }

    pub fn finish(&self, ok: bool) {
        if let Some(b) = &self.bar {
            if ok {
                b.finish_and_clear();
            } else {
                b.abandon();
            }
        } else if self.mode == Mode::Lines && ok {
            let c = self.counts.lock().expect("progress lock");
            eprintln!(
                "{}: done, {} blobs, {} bytes in {:.1?}",
                self.label,
                c.nodes,
                c.bytes_total,
                self.started.elapsed()
            );
        }
    }
}

/// A progress display for each image a library run copies.
pub fn watcher(mode: Mode) -> ferry_sync::push::Watcher {
    Arc::new(move |label: &str| Arc::new(Watched(ImageProgress::new(mode, label))) as _)
}

struct Watched(Arc<ImageProgress>);

impl ferry_sync::push::Watch for Watched {
    fn events(&self) -> EventSink {
        self.0.sink()
    }

    fn finish(&self, ok: bool) {
        self.0.finish(ok)
    }
}
