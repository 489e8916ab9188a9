//! Statuses as enums, mapped to and from their column text (and JSON) here
//! and nowhere else.

use std::fmt;
use std::str::FromStr;

/// A status column held text this gateway does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {text:?}")]
pub struct UnknownStatus {
    /// Which kind of status.
    pub what: &'static str,
    /// The text read.
    pub text: String,
}

/// An enum stored as one of a fixed set of words: `as_str`, `FromStr`,
/// `Display`, serde, and sqlx on both drivers, all from one table.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),+];

            /// The column (and JSON) text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownStatus { what: $what, text: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'q str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: &'q str = self.as_str();
                <&'q str as sqlx::Encode<'q, DB>>::encode_by_ref(&text, buf)
            }
        }
    };
}

text_enum! {
    /// Where a notification is (API.md, Notifications).
    NotificationStatus, "notification status" {
        /// Waiting for its `send_at`.
        Scheduled => "scheduled",
        /// Due, nothing sent yet.
        Queued => "queued",
        /// Some deliveries are being sent.
        Sending => "sending",
        /// Fanned out, and every delivery is final.
        Completed => "completed",
        /// Cancelled before everything was sent.
        Cancelled => "cancelled",
    }
}

impl NotificationStatus {
    /// Completed or cancelled: nothing more will change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }
}

text_enum! {
    /// Where one delivery (one device of a notification) is.
    DeliveryStatus, "delivery status" {
        /// Waiting for its next attempt (or being attempted).
        Pending => "pending",
        /// A provider accepted it.
        Delivered => "delivered",
        /// It will not be sent (refused, no provider, unknown platform).
        Failed => "failed",
        /// Its TTL ran out before a provider took it.
        Expired => "expired",
        /// Its notification was cancelled first.
        Cancelled => "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write() {
        for s in DeliveryStatus::ALL {
            assert_eq!(s.as_str().parse::<DeliveryStatus>().ok(), Some(*s));
            assert_eq!(serde_json::to_string(s).ok(), Some(format!("\"{s}\"")));
        }
        for s in NotificationStatus::ALL {
            assert_eq!(s.as_str().parse::<NotificationStatus>().ok(), Some(*s));
        }
        assert!("done".parse::<NotificationStatus>().is_err());
    }
}
