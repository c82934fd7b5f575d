//! Working days in England and Wales: weekdays that are not bank holidays.
//!
//! The regular bank holidays follow their statutory rules (New Year's Day, Good Friday,
//! Easter Monday, the early May, spring and summer bank holidays, Christmas and Boxing Day,
//! with substitute days when they fall on a weekend). The one-off changes proclaimed since
//! 1995 are listed in [`ONE_OFFS`]; holidays proclaimed after this was written go in
//! `analytics.extra_bank_holidays`.
//!
//! The KPI periods are here too: the regulator year, and the instant a period is judged at.

use std::collections::BTreeSet;

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// Proclaimed changes to the regular rules: (moved from, moved to). A `None` source is an
/// extra day.
/// A day as (year, month, day).
type Ymd = (i32, u32, u32);

const ONE_OFFS: &[(Option<Ymd>, Ymd)] = &[
    // VE Day 50: the early May bank holiday moved to Monday 8 May.
    (Some((1995, 5, 1)), (1995, 5, 8)),
    (None, (1999, 12, 31)),
    // Golden Jubilee: spring bank holiday moved to 4 June, 3 June added.
    (Some((2002, 5, 27)), (2002, 6, 4)),
    (None, (2002, 6, 3)),
    (None, (2011, 4, 29)),
    // Diamond Jubilee.
    (Some((2012, 5, 28)), (2012, 6, 4)),
    (None, (2012, 6, 5)),
    // VE Day 75: the early May bank holiday moved to Friday 8 May.
    (Some((2020, 5, 4)), (2020, 5, 8)),
    // Platinum Jubilee, and the State Funeral of Queen Elizabeth II.
    (Some((2022, 5, 30)), (2022, 6, 2)),
    (None, (2022, 6, 3)),
    (None, (2022, 9, 19)),
    // Coronation of King Charles III.
    (None, (2023, 5, 8)),
];

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("a valid calendar date")
}

/// Easter Sunday (the anonymous Gregorian algorithm).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    date(year, month as u32, day as u32)
}

fn first_monday(year: i32, month: u32) -> NaiveDate {
    let first = date(year, month, 1);
    let offset = (7 - first.weekday().num_days_from_monday()) % 7;
    first + Duration::days(i64::from(offset))
}

fn last_monday(year: i32, month: u32) -> NaiveDate {
    let next = if month == 12 {
        date(year + 1, 1, 1)
    } else {
        date(year, month + 1, 1)
    };
    let last = next - Duration::days(1);
    last - Duration::days(i64::from(last.weekday().num_days_from_monday()))
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The England and Wales bank holidays of one year.
pub fn bank_holidays(year: i32) -> BTreeSet<NaiveDate> {
    let mut days = BTreeSet::new();
    let new_year = date(year, 1, 1);
    days.insert(match new_year.weekday() {
        Weekday::Sat => new_year + Duration::days(2),
        Weekday::Sun => new_year + Duration::days(1),
        _ => new_year,
    });
    let easter = easter(year);
    days.insert(easter - Duration::days(2));
    days.insert(easter + Duration::days(1));
    days.insert(first_monday(year, 5));
    days.insert(last_monday(year, 5));
    days.insert(last_monday(year, 8));
    // Christmas and Boxing Day, each moved to the next weekday the other does not take.
    let christmas = date(year, 12, 25);
    let (christmas_off, boxing_off) = match christmas.weekday() {
        Weekday::Fri => (christmas, date(year, 12, 28)),
        Weekday::Sat => (date(year, 12, 27), date(year, 12, 28)),
        Weekday::Sun => (date(year, 12, 27), date(year, 12, 26)),
        _ => (christmas, date(year, 12, 26)),
    };
    days.insert(christmas_off);
    days.insert(boxing_off);
    for (moved_from, to) in ONE_OFFS {
        if to.0 != year {
            continue;
        }
        if let Some((y, m, d)) = moved_from {
            days.remove(&date(*y, *m, *d));
        }
        days.insert(date(to.0, to.1, to.2));
    }
    days
}

/// Working days: weekdays that are not bank holidays (plus the configured extra holidays).
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    extra: BTreeSet<NaiveDate>,
}

impl Calendar {
    pub fn new(extra: impl IntoIterator<Item = NaiveDate>) -> Calendar {
        Calendar {
            extra: extra.into_iter().collect(),
        }
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !is_weekend(day) && !self.extra.contains(&day) && !bank_holidays(day.year()).contains(&day)
    }

    /// The `n`th working day after `day` (`day` itself not counted); `day` when `n` is 0;
    /// `None` past the last date chrono represents.
    pub fn add_working_days(&self, day: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut current = day;
        let mut left = n;
        while left > 0 {
            current = current.succ_opt()?;
            if self.is_working_day(current) {
                left -= 1;
            }
        }
        Some(current)
    }

    /// Every day from `first` to `last` with its running count of working days (the count
    /// on a non-working day is the previous working day's), for the SQL `calendar` table.
    pub fn days(&self, first: NaiveDate, last: NaiveDate) -> Vec<(NaiveDate, bool, i64)> {
        let mut count = 0;
        first
            .iter_days()
            .take_while(|day| *day <= last)
            .map(|day| {
                let working = self.is_working_day(day);
                count += i64::from(working);
                (day, working, count)
            })
            .collect()
    }
}

/// The regulator year (1 April - 31 March) holding `day`.
pub fn regulator_year(day: NaiveDate) -> (NaiveDate, NaiveDate) {
    let start_year = if day.month() >= 4 {
        day.year()
    } else {
        day.year() - 1
    };
    let date = |year, month, day| NaiveDate::from_ymd_opt(year, month, day).expect("valid date");
    (date(start_year, 4, 1), date(start_year + 1, 3, 31))
}

/// The instant a period ending on `day` is judged at: the end of that day, or now if sooner.
pub fn as_of(day: NaiveDate) -> chrono::NaiveDateTime {
    let end = day
        .succ_opt()
        .unwrap_or(day)
        .and_time(chrono::NaiveTime::MIN);
    end.min(chrono::Utc::now().naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_regulator_year_runs_from_april_to_march() {
        let day = |text: &str| text.parse::<NaiveDate>().unwrap();
        assert_eq!(
            regulator_year(day("2025-03-31")),
            (day("2024-04-01"), day("2025-03-31"))
        );
        assert_eq!(
            regulator_year(day("2025-04-01")),
            (day("2025-04-01"), day("2026-03-31"))
        );
    }

    #[test]
    fn a_period_is_judged_at_the_end_of_its_last_day_or_now() {
        let day = |text: &str| text.parse::<NaiveDate>().unwrap();
        assert_eq!(
            as_of(day("2025-03-31")),
            day("2025-04-01").and_time(chrono::NaiveTime::MIN)
        );
        let today = chrono::Utc::now().date_naive();
        assert!(as_of(today) <= chrono::Utc::now().naive_utc());
    }

    fn days(list: &[&str]) -> BTreeSet<NaiveDate> {
        list.iter().map(|day| day.parse().unwrap()).collect()
    }

    /// The published lists (gov.uk/bank-holidays).
    #[test]
    fn bank_holidays_match_the_published_lists() {
        let published = [
            (
                2020,
                &[
                    "2020-01-01",
                    "2020-04-10",
                    "2020-04-13",
                    "2020-05-08",
                    "2020-05-25",
                    "2020-08-31",
                    "2020-12-25",
                    "2020-12-28",
                ][..],
            ),
            (
                2021,
                &[
                    "2021-01-01",
                    "2021-04-02",
                    "2021-04-05",
                    "2021-05-03",
                    "2021-05-31",
                    "2021-08-30",
                    "2021-12-27",
                    "2021-12-28",
                ][..],
            ),
            (
                2022,
                &[
                    "2022-01-03",
                    "2022-04-15",
                    "2022-04-18",
                    "2022-05-02",
                    "2022-06-02",
                    "2022-06-03",
                    "2022-08-29",
                    "2022-09-19",
                    "2022-12-26",
                    "2022-12-27",
                ][..],
            ),
            (
                2023,
                &[
                    "2023-01-02",
                    "2023-04-07",
                    "2023-04-10",
                    "2023-05-01",
                    "2023-05-08",
                    "2023-05-29",
                    "2023-08-28",
                    "2023-12-25",
                    "2023-12-26",
                ][..],
            ),
            (
                2024,
                &[
                    "2024-01-01",
                    "2024-03-29",
                    "2024-04-01",
                    "2024-05-06",
                    "2024-05-27",
                    "2024-08-26",
                    "2024-12-25",
                    "2024-12-26",
                ][..],
            ),
            (
                2025,
                &[
                    "2025-01-01",
                    "2025-04-18",
                    "2025-04-21",
                    "2025-05-05",
                    "2025-05-26",
                    "2025-08-25",
                    "2025-12-25",
                    "2025-12-26",
                ][..],
            ),
            (
                2026,
                &[
                    "2026-01-01",
                    "2026-04-03",
                    "2026-04-06",
                    "2026-05-04",
                    "2026-05-25",
                    "2026-08-31",
                    "2026-12-25",
                    "2026-12-28",
                ][..],
            ),
        ];
        for (year, list) in published {
            assert_eq!(bank_holidays(year), days(list), "{year}");
        }
    }

    #[test]
    fn working_days_skip_weekends_and_bank_holidays() {
        let calendar = Calendar::default();
        let day = |text: &str| text.parse::<NaiveDate>().unwrap();
        // Thursday 17 April 2025 + 1: Good Friday and Easter Monday are skipped.
        assert_eq!(
            calendar.add_working_days(day("2025-04-17"), 1),
            Some(day("2025-04-22"))
        );
        // Friday + 5 working days = next Friday.
        assert_eq!(
            calendar.add_working_days(day("2025-01-10"), 5),
            Some(day("2025-01-17"))
        );
        assert_eq!(
            calendar.add_working_days(day("2025-01-10"), 0),
            Some(day("2025-01-10"))
        );
        let extra = Calendar::new([day("2025-01-13")]);
        assert_eq!(
            extra.add_working_days(day("2025-01-10"), 1),
            Some(day("2025-01-14"))
        );
        let listed = calendar.days(day("2025-04-17"), day("2025-04-22"));
        assert_eq!(
            listed
                .iter()
                .map(|(_, working, n)| (*working, *n))
                .collect::<Vec<_>>(),
            [
                (true, 1),
                (false, 1),
                (false, 1),
                (false, 1),
                (false, 1),
                (true, 2)
            ]
        );
    }
}
