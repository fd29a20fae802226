//! The closed set of audit topics (docs/audit.md "Messages"), their wire names and
//! the dotted log4j logger each is written to by the LOG4J target. Owns the
//! names only; it does not write or route anything.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An audit topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Topic {
    /// One message per scored record.
    ApinodeQuery,
    /// Authentication and authorization failures.
    AuthFail,
    /// Admin changes, node start and stop.
    Generic,
    /// Scoring errors, failed reloads, targets that gave up.
    GenericFailure,
    /// Every HTTP call.
    ApiCalls,
    /// The node's resource use.
    ComputeResourceUsage,
    /// Outcomes sent back for predictions (the feedback loop).
    ApinodeFeedback,
    /// Signed checkpoints of the audit files' trees (network targets only:
    /// a checkpoint is about the files, so it is never written into them).
    AuditIntegrity,
}

/// A topic name that is not one of the node's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown topic {0:?} (known: apinode-query, apinode-feedback, authfail, generic, generic-failure, apicalls, compute-resource-usage, audit-integrity)"
)]
pub struct UnknownTopic(pub String);

impl Topic {
    /// Every topic.
    pub const ALL: [Topic; 8] = [
        Topic::ApinodeQuery,
        Topic::ApinodeFeedback,
        Topic::AuthFail,
        Topic::Generic,
        Topic::GenericFailure,
        Topic::ApiCalls,
        Topic::ComputeResourceUsage,
        Topic::AuditIntegrity,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::ApinodeQuery => "apinode-query",
            Topic::ApinodeFeedback => "apinode-feedback",
            Topic::AuthFail => "authfail",
            Topic::Generic => "generic",
            Topic::GenericFailure => "generic-failure",
            Topic::ApiCalls => "apicalls",
            Topic::ComputeResourceUsage => "compute-resource-usage",
            Topic::AuditIntegrity => "audit-integrity",
        }
    }

    /// The log4rs target of [`Topic::logger`]: the same name with `::`
    /// between its parts, which is how log4rs walks logger hierarchies.
    pub fn target(self) -> &'static str {
        match self {
            Topic::ApinodeQuery => "dku::apinode::audit::queries",
            Topic::ApinodeFeedback => "dku::apinode::audit::feedback",
            Topic::AuthFail => "dku::apinode::audit::auth",
            Topic::Generic => "dku::apinode::audit::admin",
            Topic::GenericFailure => "dku::apinode::audit::failures",
            Topic::ApiCalls => "dku::apinode::audit::allcalls",
            Topic::ComputeResourceUsage => "dku::apinode::audit::cru",
            Topic::AuditIntegrity => "dku::apinode::audit::integrity",
        }
    }

    /// Whether onFull DROP may drop messages of this topic when a spool is
    /// full (docs/audit.md: only queries and calls).
    pub fn droppable(self) -> bool {
        matches!(self, Topic::ApinodeQuery | Topic::ApiCalls)
    }

    /// The dotted log4j logger of the LOG4J target.
    pub fn logger(self) -> &'static str {
        match self {
            Topic::ApinodeQuery => "dku.apinode.audit.queries",
            Topic::ApinodeFeedback => "dku.apinode.audit.feedback",
            Topic::AuthFail => "dku.apinode.audit.auth",
            Topic::Generic => "dku.apinode.audit.admin",
            Topic::GenericFailure => "dku.apinode.audit.failures",
            Topic::ApiCalls => "dku.apinode.audit.allcalls",
            Topic::ComputeResourceUsage => "dku.apinode.audit.cru",
            Topic::AuditIntegrity => "dku.apinode.audit.integrity",
        }
    }
}

impl FromStr for Topic {
    type Err = UnknownTopic;
    fn from_str(s: &str) -> Result<Self, UnknownTopic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownTopic(s.to_owned()))
    }
}

impl TryFrom<String> for Topic {
    type Error = UnknownTopic;
    fn try_from(s: String) -> Result<Self, UnknownTopic> {
        s.parse()
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for t in Topic::ALL {
            assert_eq!(t.as_str().parse::<Topic>(), Ok(t));
            assert!(t.logger().starts_with("dku.apinode.audit."));
            assert_eq!(t.target().replace("::", "."), t.logger());
        }
        let e = "apinode-querry".parse::<Topic>().unwrap_err();
        assert!(e.to_string().contains("apinode-querry"));
        let json: Topic = serde_json::from_str("\"authfail\"").expect("known topic");
        assert_eq!(json, Topic::AuthFail);
    }
}
