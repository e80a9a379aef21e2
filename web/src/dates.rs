//! Times as pages write them, in UTC: the server knows no reader's zone (the
//! image page's script puts its dates in the reader's own).

/// A moment, by its parts in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl Utc {
    /// `ms` since the Unix epoch.
    pub fn from_ms(ms: u64) -> Self {
        let (days, of_day) = ((ms / 1000) / 86_400, (ms / 1000) % 86_400);
        // Days to a civil date (Howard Hinnant's algorithm), in the proleptic Gregorian calendar.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
        let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Self { year, month, day, hour: of_day / 3600, minute: of_day % 3600 / 60, second: of_day % 60 }
    }

    /// "2026-12-07T07:30:00Z", for `<time datetime>`.
    pub fn iso(&self) -> String {
        let Self { year, month, day, hour, minute, second } = self;
        format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }

    /// "7 Dec 2026, 07:30 UTC", for people.
    pub fn for_people(&self) -> String {
        let Self { year, month, day, hour, minute, .. } = self;
        format!("{day} {} {year}, {hour:02}:{minute:02} UTC", MONTHS[*month as usize - 1])
    }

    /// "2026-12-07 07:30:00 UTC", for operators, who sort and compare.
    pub fn for_operators(&self) -> String {
        let Self { year, month, day, hour, minute, second } = self;
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::Utc;

    #[test]
    fn moments_read_as_dates_in_utc() {
        assert_eq!(Utc::from_ms(0).iso(), "1970-01-01T00:00:00Z");
        // A leap day, a second before its end.
        let leap = Utc::from_ms(1_709_251_199_000);
        assert_eq!(
            (leap.iso(), leap.for_people(), leap.for_operators()),
            ("2024-02-29T23:59:59Z".to_owned(), "29 Feb 2024, 23:59 UTC".to_owned(), "2024-02-29 23:59:59 UTC".to_owned())
        );
        assert_eq!(Utc::from_ms(1_796_628_734_906).iso(), "2026-12-07T07:32:14Z");
        assert_eq!(Utc::from_ms(951_782_400_000).for_operators(), "2000-02-29 00:00:00 UTC");
    }
}
