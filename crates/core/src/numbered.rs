//! Page-numbered lists (perform.chat): `page` from 1, a bounded `limit`, and totals that let a
//! client's `while page < total_pages` loop end.

use crate::error::ValidationError;
use crate::page;

/// A valid page request: `page` ≥ 1 and `limit` within the route's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberedPage {
    /// 1-based page number.
    pub page: i64,
    /// Items per page.
    pub limit: i64,
}

impl NumberedPage {
    /// Checks `page` (default 1) and `limit` (default `default`, at most `max`), naming the
    /// offending parameter. A page so large that its offset overflows is refused too, so the
    /// offset is always representable.
    pub fn parse(
        page: Option<i64>,
        limit: Option<i64>,
        default: i64,
        max: i64,
    ) -> Result<NumberedPage, ValidationError> {
        let limit = page::limit(limit, default, max, "limit")?;
        let page = page.unwrap_or(1);
        if page < 1 {
            return Err(ValidationError::field(
                "page",
                format!("must be 1 or more, got {page}"),
            ));
        }
        if (page - 1).checked_mul(limit).is_none() {
            return Err(ValidationError::field("page", "is too large"));
        }
        Ok(NumberedPage { page, limit })
    }

    /// Items to skip.
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.limit
    }

    /// `ceil(total / limit)`: 0 for an empty list. Page 1 is still served (empty), and both
    /// `page < total_pages` and `page >= total_pages` loops stop after it.
    pub fn total_pages(&self, total: i64) -> i64 {
        if total <= 0 {
            0
        } else {
            (total - 1) / self.limit + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_and_bounds() {
        let p = NumberedPage::parse(None, None, 20, 100).unwrap();
        assert_eq!((p.page, p.limit, p.offset()), (1, 20, 0));
        assert_eq!(
            NumberedPage::parse(Some(0), None, 20, 100)
                .unwrap_err()
                .errors[0]
                .field,
            "page"
        );
        assert_eq!(
            NumberedPage::parse(Some(1), Some(101), 20, 100)
                .unwrap_err()
                .errors[0]
                .field,
            "limit"
        );
        assert!(NumberedPage::parse(Some(i64::MAX), Some(100), 20, 100).is_err());
        assert_eq!(p.total_pages(0), 0);
        assert_eq!(p.total_pages(20), 1);
        assert_eq!(p.total_pages(21), 2);
    }

    proptest! {
        /// Walking pages 1..=total_pages (at least page 1) covers every item exactly once.
        #[test]
        fn pages_cover_the_list(total in 0i64..1000, limit in 1i64..=100) {
            let first = NumberedPage::parse(Some(1), Some(limit), 20, 100).unwrap();
            let pages = first.total_pages(total);
            let mut seen = 0;
            let mut page = 1;
            loop {
                let p = NumberedPage::parse(Some(page), Some(limit), 20, 100).unwrap();
                let n = (total - p.offset()).clamp(0, limit);
                prop_assert_eq!(p.offset(), seen);
                seen += n;
                if page >= pages {
                    break;
                }
                prop_assert_eq!(n, limit, "only the last page is short");
                page += 1;
            }
            prop_assert_eq!(seen, total);
        }
    }
}
