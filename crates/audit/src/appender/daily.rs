//! log4j's `DailyRollingFileAppender`: the live file is `File`; when a record
//! arrives in a new period, the live file is renamed `File` + the
//! `DatePattern` rendered for the period that ended (`queries.log.2026-11-21`
//! with `'.'yyyy-MM-dd`), and a new live file starts. The period is the
//! finest unit the pattern shows: minute, hour, half-day, day, week or month,
//! in local time, as in log4j.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration, Local, NaiveDate, TimeZone, Timelike};
use log4rs::append::Append;
use log4rs::encode::Encode;

use super::retention::Policy;
use super::{AppenderRegistry, LogFile, encode, lock};
use crate::record_context::RecordContext;

/// The rolling period of a date pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// `mm` in the pattern.
    Minute,
    /// `HH`.
    Hour,
    /// `a` (AM/PM).
    HalfDay,
    /// `dd`, `D`, `E`.
    Day,
    /// `w`, `W`.
    Week,
    /// `MM` only.
    Month,
}

impl Period {
    /// The finest unit a Java date pattern shows (quoted text ignored).
    ///
    /// # Errors
    /// A message when the pattern shows no date or time unit.
    pub fn of(java_pattern: &str) -> Result<Period, String> {
        let mut letters = String::new();
        let mut quoted = false;
        for c in java_pattern.chars() {
            match c {
                '\'' => quoted = !quoted,
                c if !quoted && c.is_ascii_alphabetic() => letters.push(c),
                _ => {}
            }
        }
        let has = |set: &str| letters.chars().any(|c| set.contains(c));
        Ok(if has("m") {
            Period::Minute
        } else if has("Hhk") {
            Period::Hour
        } else if has("a") {
            Period::HalfDay
        } else if has("dDEu") {
            Period::Day
        } else if has("wW") {
            Period::Week
        } else if has("M") {
            Period::Month
        } else {
            return Err(format!("DatePattern {java_pattern:?} has no date unit to roll on"));
        })
    }

    /// The start of the period after the one holding `t`.
    pub fn next_start(self, t: DateTime<Local>) -> DateTime<Local> {
        let day = t.date_naive();
        let midnight = |d: NaiveDate| local(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
        match self {
            Period::Minute => local(day.and_hms_opt(t.hour(), t.minute(), 0).expect("valid")) + Duration::minutes(1),
            Period::Hour => local(day.and_hms_opt(t.hour(), 0, 0).expect("valid")) + Duration::hours(1),
            Period::HalfDay if t.hour() < 12 => local(day.and_hms_opt(12, 0, 0).expect("noon exists")),
            Period::HalfDay | Period::Day => midnight(day.succ_opt().expect("a next day")),
            Period::Week => {
                let days = 7 - i64::from(day.weekday().num_days_from_monday());
                midnight(day + Duration::days(days))
            }
            Period::Month => {
                let (y, m) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
                midnight(NaiveDate::from_ymd_opt(y, m, 1).expect("first of month"))
            }
        }
    }
}

/// A naive local time as a zoned one (the earliest, around DST changes).
fn local(naive: chrono::NaiveDateTime) -> DateTime<Local> {
    Local.from_local_datetime(&naive).earliest().unwrap_or_else(|| Local.from_utc_datetime(&naive))
}

#[derive(Debug)]
struct State {
    /// `File` + the date of the live file's period.
    scheduled: PathBuf,
    next_rollover: DateTime<Local>,
}

/// Rolls by time period.
#[derive(Debug)]
pub struct DailyRollingFileAppender {
    state: Mutex<State>,
    file: Arc<Mutex<LogFile>>,
    encoder: Box<dyn Encode>,
    /// The DatePattern as a chrono format.
    suffix_format: String,
    period: Period,
    policy: Policy,
    registry: AppenderRegistry,
}

impl DailyRollingFileAppender {
    /// Opens `path` for the appender `name`; the schedule is the chrono form
    /// of the DatePattern and its period.
    /// The live file's period is that of its last modification (or now).
    ///
    /// # Errors
    /// The I/O error, naming the path.
    pub fn new(
        name: &str,
        path: &Path,
        append: bool,
        (suffix_format, period): (String, Period),
        policy: Policy,
        encoder: Box<dyn Encode>,
        registry: &AppenderRegistry,
    ) -> std::io::Result<Self> {
        let since: DateTime<Local> =
            std::fs::metadata(path).and_then(|m| m.modified()).map_or_else(|_| Local::now(), DateTime::from);
        let mut opened = LogFile::open(path, append, registry)?;
        opened.attach_tree(name);
        let file = Arc::new(Mutex::new(opened));
        registry.add_file(&file);
        let scheduled = suffixed(path, &suffix_format, since);
        let state = State { scheduled, next_rollover: period.next_start(since) };
        if policy.max_age.is_some() || policy.compress {
            registry.with_retention(|r| r.opened(path, policy));
        }
        Ok(Self { state: Mutex::new(state), file, encoder, suffix_format, period, policy, registry: registry.clone() })
    }
}

fn suffixed(path: &Path, format: &str, t: DateTime<Local>) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(t.format(format).to_string());
    PathBuf::from(name)
}

impl Append for DailyRollingFileAppender {
    fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
        let bytes = encode(&*self.encoder, record)?;
        let now = RecordContext::with_current(RecordContext::local_time);
        let mut state = lock(&self.state);
        let mut file = lock(&self.file);
        if now >= state.next_rollover {
            let path = file.path().to_path_buf();
            file.flush()?;
            file.checkpoint(true, false);
            if state.scheduled.exists() {
                // log4j would replace it, deleting its records unannounced:
                // it is kept under a unique name instead.
                std::fs::rename(
                    &state.scheduled,
                    super::retention::staged_name(&state.scheduled).with_extension("kept"),
                )?;
            }
            std::fs::rename(&path, &state.scheduled)?;
            file.reopen(false)?;
            if self.policy.max_age.is_some() || self.policy.compress {
                let dated = state.scheduled.clone();
                self.registry.with_retention(|r| r.dated(&path, dated, self.policy));
            }
            file.prune_tree();
            state.scheduled = suffixed(&path, &self.suffix_format, now);
            state.next_rollover = self.period.next_start(now);
        }
        file.write(&bytes, RecordContext::current_seq())?;
        Ok(())
    }

    fn flush(&self) {
        let _ = lock(&self.file).flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::PatternLayout;

    #[test]
    fn the_period_is_the_finest_unit_of_the_pattern() {
        assert_eq!(Period::of("'.'yyyy-MM-dd"), Ok(Period::Day));
        assert_eq!(Period::of("'.'yyyy-MM-dd-HH"), Ok(Period::Hour));
        assert_eq!(Period::of("'.'yyyy-MM-dd-HH-mm"), Ok(Period::Minute));
        assert_eq!(Period::of("'.'yyyy-MM"), Ok(Period::Month));
        assert_eq!(Period::of("'.'yyyy-ww"), Ok(Period::Week));
        assert_eq!(Period::of("'.'yyyy-MM-dd-a"), Ok(Period::HalfDay));
        assert!(Period::of("'.log'").is_err());
    }

    #[test]
    fn next_period_starts() {
        let t = Local.with_ymd_and_hms(2026, 12, 31, 10, 15, 2).single().expect("unambiguous");
        let at = |y, mo, d, h, mi| Local.with_ymd_and_hms(y, mo, d, h, mi, 0).single().expect("unambiguous");
        assert_eq!(Period::Minute.next_start(t), at(2026, 12, 31, 10, 16));
        assert_eq!(Period::Hour.next_start(t), at(2026, 12, 31, 11, 0));
        assert_eq!(Period::HalfDay.next_start(t), at(2026, 12, 31, 12, 0));
        assert_eq!(Period::Day.next_start(t), at(2027, 1, 1, 0, 0));
        assert_eq!(Period::Week.next_start(t), at(2027, 1, 4, 0, 0), "Thursday → next Monday");
        assert_eq!(Period::Month.next_start(t), at(2027, 1, 1, 0, 0));
    }

    #[test]
    fn rolls_when_a_record_arrives_in_a_new_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.log");
        let layout = Box::new(PatternLayout::parse("%m%n").expect("pattern"));
        let format = crate::layout::java_date::to_chrono("'.'yyyy-MM-dd-HH-mm").expect("valid");
        let appender = DailyRollingFileAppender::new(
            "Q",
            &path,
            true,
            (format, Period::Minute),
            Policy::default(),
            layout,
            &AppenderRegistry::new(),
        )
        .expect("open");
        let log_at = |time: &str, message: &str| {
            let context = RecordContext::fixed("t", time);
            crate::record_context::with_context(context, || {
                let args = format_args!("{message}");
                appender.append(&log::Record::builder().args(args).build()).expect("append");
            });
        };
        // The live file's period is now's minute; these records come later.
        log_at("2099-06-15T12:00:30Z", "first");
        log_at("2099-06-15T12:01:10Z", "second");
        appender.flush();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 3, "the live file, now's period and 2099's first minute: {names:?}");
        assert_eq!(std::fs::read_to_string(&path).expect("live"), "second\n");
        let rolled = names.iter().find(|n| n.contains("2099")).expect("a file of 2099");
        assert_eq!(std::fs::read_to_string(dir.path().join(rolled)).expect("rolled"), "first\n");
    }
}
