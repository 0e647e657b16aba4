//! `ctl top`: a live terminal view of an instance (ratatui), redrawn every interval from the
//! counters segment and the ring headers, like `ctl metrics` but for a person. `--once` prints
//! one frame as text (after one interval, so rates are there) for scripts and tests.

mod view;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::metrics::model::Source;
use view::{draw, render_text, View};

/// Options of `ctl top`.
#[derive(Args, Debug)]
#[command(
    after_help = "Keys: q or Esc quits.\n\nExamples:\n  quantum ctl top --instance prod1\n  quantum ctl top --instance prod1 --once --width 120 --height 40"
)]
pub struct TopArgs {
    /// Instance name.
    #[arg(long)]
    pub instance: String,
    /// Redraw (and rate) interval in ms.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Print one frame as text and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: frame width in columns.
    #[arg(long, default_value_t = 120)]
    pub width: u16,
    /// With --once: frame height in lines.
    #[arg(long, default_value_t = 40)]
    pub height: u16,
    /// A peer whose heartbeat is older than this is not alive (ms).
    #[arg(long, default_value_t = 3000)]
    pub peer_timeout_ms: u64,
}

/// Runs `ctl top`.
pub fn run(a: TopArgs) -> Result<()> {
    let interval = Duration::from_millis(a.interval_ms.max(50));
    let mut source = Source::new(&a.instance, a.peer_timeout_ms, false);
    if a.once {
        let prev = source.sample();
        std::thread::sleep(interval);
        let cur = source.sample();
        let view = View::new(source.instance(), Some(&prev), &cur, interval);
        let mut out = std::io::stdout().lock();
        out.write_all(render_text(&view, a.width.max(40), a.height.max(10)).as_bytes())?;
        return Ok(out.flush()?);
    }
    if !std::io::stdout().is_terminal() {
        bail!("ctl top draws on a terminal; --once prints one frame as text");
    }
    let mut terminal = ratatui::try_init().context("cannot take over the terminal")?;
    let res = live(&mut terminal, &mut source, interval);
    ratatui::restore();
    res
}

fn live(
    terminal: &mut ratatui::DefaultTerminal,
    source: &mut Source,
    interval: Duration,
) -> Result<()> {
    let mut prev = None;
    let mut cur = source.sample();
    let mut next = Instant::now() + interval;
    loop {
        let view = View::new(source.instance(), prev.as_ref(), &cur, interval);
        terminal.draw(|f| draw(f, &view))?;
        // Keys and resizes redraw at once; otherwise the next sample is taken on time.
        let wait = next.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        if Instant::now() >= next {
            next += interval;
            prev = Some(std::mem::replace(&mut cur, source.sample()));
        }
    }
}
