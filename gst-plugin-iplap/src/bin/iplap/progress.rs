//! Progress bars for long CLI work (indicatif), driven by media time when the length is known.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over the media duration in milliseconds, or a spinner when the duration is unknown.
pub fn frames_bar(duration: Option<gst::ClockTime>, what: &str) -> ProgressBar {
    let bar = match duration {
        Some(d) => {
            let bar = ProgressBar::new(d.mseconds());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {percent}% {elapsed_precise} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        }
        None => ProgressBar::new_spinner(),
    };
    bar.set_message(what.to_owned());
    bar
}

/// Moves the bar to the frame's timestamp.
pub fn advance(bar: &ProgressBar, pts: Option<gst::ClockTime>) {
    match pts {
        Some(t) if bar.length().is_some() => bar.set_position(t.mseconds()),
        _ => bar.tick(),
    }
}
