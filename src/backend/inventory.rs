//! The simulator's inventory: the items, their states, the sites, durations and injected
//! faults, read from TOML (or the built-in demo inventory). Problems are reported with the
//! line they are on.

use super::{Operation, Site};
use crate::clock::{parse_duration, Timestamp};
use crate::error::Error;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// The demo inventory used by `runbook run` when no inventory is configured.
pub const DEMO: &str = include_str!("demo-inventory.toml");

/// Where the simulation starts when the inventory does not say.
pub const DEFAULT_START: &str = "2026-11-26T02:00:00Z";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    start: Option<Spanned<String>>,
    #[serde(default)]
    sites: SitesSpec,
    #[serde(default)]
    durations: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    plans: BTreeMap<String, PlanSpec>,
    #[serde(default)]
    items: Vec<ItemSpec>,
}

/// A recovery plan in the inventory: a list of items (one group), or its groups in boot
/// order.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a list of item names (one group), or a table with `groups = [[\"a\"], [\"b\", \"c\"]]` (groups in boot order)"
)]
enum PlanSpec {
    Members(Vec<String>),
    Groups(GroupsSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsSpec {
    groups: Vec<Vec<String>>,
    /// Manual actions: the plan's job waits before a group until the operator resumes it.
    #[serde(default)]
    actions: Vec<ActionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionSpec {
    name: String,
    /// The group (from 1) the action runs before.
    before_group: usize,
    #[serde(default)]
    instructions: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SitesSpec {
    #[serde(default)]
    primary: SiteSpec,
    #[serde(default)]
    recovery: SiteSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSpec {
    name: Option<String>,
    #[serde(default = "yes")]
    connected: Spanned<bool>,
    /// The title of the manual step at which a disconnected site comes back.
    reconnects_at: Option<Spanned<String>>,
    /// How long after the start a disconnected site comes back.
    reconnects_after: Option<Spanned<String>>,
}

impl Default for SiteSpec {
    fn default() -> Self {
        SiteSpec {
            name: None,
            connected: Spanned::new(0..0, true),
            reconnects_at: None,
            reconnects_after: None,
        }
    }
}

fn yes() -> Spanned<bool> {
    Spanned::new(0..0, true)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemSpec {
    name: Spanned<String>,
    #[serde(default = "primary")]
    active_location: Site,
    #[serde(default)]
    state: InitialState,
    #[serde(default)]
    health: Health,
    last_test_failover: Option<Spanned<String>>,
    #[serde(default)]
    durations: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    fail: Vec<Spanned<String>>,
    fail_message: Option<String>,
}

fn primary() -> Site {
    Site::Primary
}

/// The protection state an item starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialState {
    /// Replicating from the active site to the other one.
    #[default]
    Protected,
    /// A failover succeeded and waits for commit.
    FailoverCommitPending,
    /// A failover was committed; replication is stopped until reverse replication.
    FailoverCommitted,
    /// A test failover waits for its cleanup.
    DrillInProgress,
    /// Replication stopped.
    Unprotected,
}

/// Replication health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    #[default]
    Normal,
    Warning,
    Critical,
}

impl Health {
    pub fn asr(self) -> &'static str {
        match self {
            Health::Normal => "Normal",
            Health::Warning => "Warning",
            Health::Critical => "Critical",
        }
    }
}

/// How long each operation's job takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durations([Duration; 6]);

impl Default for Durations {
    /// Realistic figures for Hyper-V VMs between two VMM sites (commit observed at about 46 s).
    fn default() -> Self {
        let m = |min: u64| Duration::from_secs(min * 60);
        Durations([m(8), m(6), Duration::from_secs(46), m(12), m(7), m(3)])
    }
}

impl Durations {
    pub fn get(&self, op: Operation) -> Duration {
        self.0[Self::index(op)]
    }

    pub fn set(&mut self, op: Operation, d: Duration) {
        self.0[Self::index(op)] = d;
    }

    fn index(op: Operation) -> usize {
        Operation::ALL.iter().position(|o| *o == op).unwrap_or(0)
    }
}

/// One item of the inventory.
#[derive(Debug, Clone)]
pub struct ItemSeed {
    pub name: String,
    pub active_location: Site,
    pub state: InitialState,
    pub health: Health,
    pub last_test_failover: Option<Timestamp>,
    pub durations: Durations,
    pub fail: BTreeSet<Operation>,
    pub fail_message: Option<String>,
}

/// A recovery plan: its groups of items, booted (failed over, committed...) one group after
/// the other, the members of a group together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSeed {
    pub groups: Vec<Vec<String>>,
    /// Manual actions, each before its group, on failovers and drills of the plan.
    pub actions: Vec<ManualSeed>,
}

/// A recovery plan's manual action: its job is suspended there until resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualSeed {
    pub name: String,
    pub instructions: String,
    /// The group (from 1) it runs before.
    pub before_group: usize,
}

impl PlanSeed {
    /// Every member, in boot order.
    pub fn members(&self) -> impl Iterator<Item = &String> {
        self.groups.iter().flatten()
    }
}

/// A site's VMM server.
#[derive(Debug, Clone)]
pub struct SiteSeed {
    pub name: String,
    pub connected: bool,
    /// When a disconnected site comes back, if it does.
    pub reconnects: Option<Reconnect>,
}

/// When a disconnected site comes back during a simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconnect {
    /// When the operator confirms the manual step with this title.
    AtStep(String),
    /// This long after the simulation's start.
    After(Duration),
    /// At the first manual step confirmed after a failover started (what-if's outage: an
    /// operator says when the site is back).
    AtStepAfterFailover,
}

/// A parsed, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Where it came from, for messages.
    pub origin: String,
    pub start: Timestamp,
    pub primary: SiteSeed,
    pub recovery: SiteSeed,
    pub plans: BTreeMap<String, PlanSeed>,
    /// How long operations take on items that do not say (`[durations]` over the built-in
    /// figures).
    pub durations: Durations,
    /// Shared, so every simulator of the same inventory reuses it.
    pub items: Arc<[ItemSeed]>,
    /// Item name to its position in `items`.
    pub index: Arc<HashMap<String, usize>>,
}

impl Inventory {
    /// Whether an item of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// This estate with the job durations of `other`: its items' own where it has the
    /// item, else its defaults. (A live estate says nothing of how long jobs take.)
    pub fn with_durations_of(mut self, other: &Inventory) -> Inventory {
        let items: Vec<ItemSeed> = self
            .items
            .iter()
            .map(|seed| ItemSeed {
                durations: other
                    .index
                    .get(&seed.name)
                    .map_or(other.durations, |&i| other.items[i].durations),
                ..seed.clone()
            })
            .collect();
        self.items = Arc::from(items);
        self.durations = other.durations;
        self
    }
}

impl Inventory {
    /// Reads and validates an inventory file (inside its own project: see [`crate::files`]).
    pub fn load(path: &Path) -> Result<Inventory, Error> {
        let text = crate::files::read_named(path)?;
        Inventory::parse(&text, &crate::paths::display(path))
    }

    /// The built-in demo inventory.
    pub fn demo() -> Inventory {
        Inventory::parse(DEMO, "demo inventory").unwrap_or_else(|_| Inventory::empty())
    }

    /// No items: an open-world simulator creates them on first use.
    pub fn empty() -> Inventory {
        Inventory {
            origin: "no inventory".into(),
            start: Timestamp::parse_rfc3339(DEFAULT_START).unwrap_or_default(),
            primary: SiteSeed {
                name: "primary-vmm".into(),
                connected: true,
                reconnects: None,
            },
            recovery: SiteSeed {
                name: "recovery-vmm".into(),
                connected: true,
                reconnects: None,
            },
            plans: BTreeMap::new(),
            durations: Durations::default(),
            items: Arc::from(Vec::new()),
            index: Arc::default(),
        }
    }

    /// Parses inventory TOML; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Inventory, Error> {
        let bad = |message: String, span: Option<std::ops::Range<usize>>| Error::Config {
            path: origin.to_string(),
            message: crate::diagnostics::shorten(message),
            span: span.map(Into::into),
            text: text.to_string(),
            help: Some("see runbooks/inventory.toml for a complete example".into()),
        };
        let file: File =
            toml::from_str(text).map_err(|e| bad(e.message().to_string(), e.span()))?;
        let mut inv = Inventory::empty();
        inv.origin = origin.to_string();
        if let Some(start) = &file.start {
            inv.start = Timestamp::parse_rfc3339(start.get_ref())
                .map_err(|m| bad(m, Some(start.span())))?;
        }
        for (spec, seed) in [
            (file.sites.primary, &mut inv.primary),
            (file.sites.recovery, &mut inv.recovery),
        ] {
            if let Some(name) = spec.name {
                seed.name = name;
            }
            seed.connected = *spec.connected.get_ref();
            seed.reconnects = match (spec.reconnects_at, spec.reconnects_after) {
                (Some(_), Some(after)) => {
                    return Err(bad(
                        "a site reconnects at a manual step or after a time, not both".into(),
                        Some(after.span()),
                    ))
                }
                (Some(step), None) => {
                    Some((Reconnect::AtStep(step.get_ref().clone()), step.span()))
                }
                (None, Some(after)) => {
                    let d =
                        parse_duration(after.get_ref()).map_err(|m| bad(m, Some(after.span())))?;
                    Some((Reconnect::After(d), after.span()))
                }
                (None, None) => None,
            }
            .map(|(r, span)| {
                if seed.connected {
                    Err(bad(
                        "only a site with `connected = false` can reconnect".into(),
                        Some(span),
                    ))
                } else {
                    Ok(r)
                }
            })
            .transpose()?;
        }
        let defaults =
            durations(Durations::default(), &file.durations).map_err(|(m, s)| bad(m, Some(s)))?;
        let mut names = BTreeSet::new();
        let mut items = Vec::new();
        for spec in file.items {
            let name = spec.name.get_ref().trim().to_string();
            if name.is_empty() {
                return Err(bad(
                    "an item's name is empty".into(),
                    Some(spec.name.span()),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(bad(
                    format!("item `{name}` is listed twice"),
                    Some(spec.name.span()),
                ));
            }
            let last_test_failover = match &spec.last_test_failover {
                Some(t) => Some(
                    Timestamp::parse_rfc3339(t.get_ref()).map_err(|m| bad(m, Some(t.span())))?,
                ),
                None => None,
            };
            let mut fail = BTreeSet::new();
            for op in &spec.fail {
                let parsed = Operation::parse(op.get_ref()).ok_or_else(|| {
                    bad(
                        format!(
                            "`{}` is not an operation; use one of {}",
                            op.get_ref(),
                            op_names()
                        ),
                        Some(op.span()),
                    )
                })?;
                fail.insert(parsed);
            }
            items.push(ItemSeed {
                name,
                active_location: spec.active_location,
                state: spec.state,
                health: spec.health,
                last_test_failover,
                durations: durations(defaults, &spec.durations)
                    .map_err(|(m, s)| bad(m, Some(s)))?,
                fail,
                fail_message: spec.fail_message,
            });
        }
        for (plan, spec) in file.plans {
            let seed = plan_seed(&plan, spec, &names, text).map_err(|(message, at)| {
                let at = at.or_else(|| text.find(&plan).map(|a| a..a + plan.len()));
                bad(message, at)
            })?;
            inv.plans.insert(plan, seed);
        }
        inv.durations = defaults;
        inv.index = Arc::new(
            items
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
        );
        inv.items = Arc::from(items);
        Ok(inv)
    }
}

/// A plan's groups, checked: members that are items, each once, manual actions before a
/// group of the plan. ASR's limits on a plan's size are `check`'s (RB125), so that a plan
/// over them is a finding at the runbook's line rather than an unreadable inventory. An
/// error carries where its member is quoted in `text`, if it is about one.
fn plan_seed(
    plan: &str,
    spec: PlanSpec,
    items: &BTreeSet<String>,
    text: &str,
) -> Result<PlanSeed, (String, Option<std::ops::Range<usize>>)> {
    let quoted = |member: &str| {
        text.find(&format!("\"{member}\""))
            .map(|a| a..a + member.len() + 2)
    };
    let (groups, actions) = match spec {
        PlanSpec::Members(members) => (vec![members], Vec::new()),
        PlanSpec::Groups(g) => (g.groups, g.actions),
    };
    if let Some(a) = actions
        .iter()
        .find(|a| a.before_group == 0 || a.before_group > groups.len())
    {
        return Err((
            format!(
                "recovery plan `{plan}`: manual action `{}` runs before group {}, but the plan's groups are 1 to {}",
                a.name,
                a.before_group,
                groups.len()
            ),
            None,
        ));
    }
    let actions = actions
        .into_iter()
        .map(|a| ManualSeed {
            name: a.name,
            instructions: a.instructions,
            before_group: a.before_group,
        })
        .collect();
    if groups.is_empty() || groups.iter().any(Vec::is_empty) {
        return Err((
            format!(
                "recovery plan `{plan}` has an empty group; every group needs at least one item"
            ),
            None,
        ));
    }
    let mut seen = BTreeSet::new();
    for member in groups.iter().flatten() {
        if !items.contains(member) {
            return Err((
                format!("recovery plan `{plan}` names `{member}`, which is not an item"),
                quoted(member),
            ));
        }
        if !seen.insert(member.as_str()) {
            return Err((
                format!("recovery plan `{plan}` lists `{member}` twice; an item is in one group of a plan"),
                quoted(member),
            ));
        }
    }
    Ok(PlanSeed { groups, actions })
}

fn op_names() -> String {
    Operation::ALL
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn durations(
    base: Durations,
    specs: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<Durations, (String, std::ops::Range<usize>)> {
    let mut out = base;
    for (key, value) in specs {
        let op = Operation::parse(key.get_ref()).ok_or_else(|| {
            (
                format!(
                    "`{}` is not an operation; use one of {}",
                    key.get_ref(),
                    op_names()
                ),
                key.span(),
            )
        })?;
        let d = parse_duration(value.get_ref()).map_err(|m| (m, value.span()))?;
        out.set(op, d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_inventory_parses() {
        let inv = Inventory::parse(DEMO, "demo").unwrap();
        assert!(inv.items.len() >= 5);
        assert!(inv
            .plans
            .values()
            .flat_map(PlanSeed::members)
            .all(|m| inv.items.iter().any(|i| &i.name == m)));
    }

    #[test]
    fn errors_point_at_the_line() {
        let text = "[[items]]\nname = \"a\"\nfail = [\"plannd_failover\"]\n";
        let err = Inventory::parse(text, "inv.toml").unwrap_err();
        let Error::Config { message, span, .. } = err else {
            panic!("wrong error")
        };
        assert!(message.contains("plannd_failover"), "{message}");
        let span = span.unwrap();
        assert_eq!(
            &text[span.offset()..span.offset() + span.len()],
            "\"plannd_failover\""
        );
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_refused() {
        assert!(Inventory::parse("[[items]]\nname = \"a\"\nhelth = \"normal\"\n", "x").is_err());
        assert!(Inventory::parse("[durations]\ncommit = \"soon\"\n", "x").is_err());
        assert!(
            Inventory::parse("[[items]]\nname = \"a\"\n[[items]]\nname = \"a\"\n", "x").is_err()
        );
    }

    #[test]
    fn per_item_durations_override_defaults() {
        let text = "[durations]\ncommit = \"1m\"\n[[items]]\nname = \"a\"\ndurations = { planned_failover = \"20m\" }\n";
        let inv = Inventory::parse(text, "x").unwrap();
        let d = inv.items[0].durations;
        assert_eq!(d.get(Operation::Commit), Duration::from_secs(60));
        assert_eq!(d.get(Operation::PlannedFailover), Duration::from_secs(1200));
    }

    #[test]
    fn plans_are_a_list_of_items_or_groups_in_boot_order() {
        let items = "[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n[[items]]\nname = \"c\"\n";
        let text = format!("[plans]\nflat = [\"a\", \"b\"]\n[plans.tiers]\ngroups = [[\"c\"], [\"a\", \"b\"]]\n{items}");
        let inv = Inventory::parse(&text, "x").unwrap();
        assert_eq!(inv.plans["flat"].groups, vec![vec!["a", "b"]]);
        assert_eq!(inv.plans["tiers"].groups, vec![vec!["c"], vec!["a", "b"]]);
        assert_eq!(
            inv.plans["tiers"].members().collect::<Vec<_>>(),
            ["c", "a", "b"]
        );
        for (plans, wanted, at) in [
            (
                "[plans]\np = [\"a\", \"zz\"]\n",
                "names `zz`, which is not an item",
                "\"zz\"",
            ),
            (
                "[plans.p]\ngroups = [[\"a\"], [\"b\", \"a\"]]\n",
                "lists `a` twice",
                "\"a\"",
            ),
            (
                "[plans.p]\ngroups = [[\"a\"], []]\n",
                "has an empty group",
                "p",
            ),
            ("[plans]\np = []\n", "has an empty group", "p"),
            (
                "[plans.p]\ngroups = [[\"a\"]]\nactions = [{ name = \"x\", before_group = 2 }]\n",
                "runs before group 2",
                "p",
            ),
            (
                "[plans.p]\ngroup = [[\"a\"]]\n",
                "a list of item names (one group), or a table with `groups",
                "group",
            ),
            ("[plans]\np = \"a\"\n", "a list of item names", "\"a\""),
        ] {
            let text = format!("{plans}{items}");
            let err = Inventory::parse(&text, "inv.toml").unwrap_err();
            let Error::Config { message, span, .. } = err else {
                panic!("wrong error")
            };
            assert!(message.contains(wanted), "{plans}: {message}");
            let span = span.expect("a location");
            let shown = &text[span.offset()..span.offset() + span.len()];
            assert!(shown.contains(at), "{plans}: points at {shown:?}");
        }
    }
}
