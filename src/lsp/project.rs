//! What a request about one open document can read: its text and tokens, the inventory its
//! `runbook.toml` names (as `check` finds it), and the modules it imports (open documents
//! first, as the checks read them).

use super::cache::Cache;
use super::documents::{Document, Documents};
use super::syntax::{self, Token};
use crate::backend::inventory::Inventory;
use crate::backend::{Backend, Item};
use crate::diagnostics::{line_col_of, utf16_position};
use crate::script::resolver::{with_overlay, Resolver};
use lsp_types::{Position, Range, Url};
use std::sync::Arc;

/// One open document and what it reaches.
pub(crate) struct Project<'a> {
    pub doc: Document,
    pub tokens: Vec<Token>,
    pub docs: &'a Documents,
    pub cache: &'a Cache,
}

/// A module a runbook imports.
pub(crate) struct Module {
    /// Where an editor opens it (the stdlib's: its cached copy).
    pub uri: Option<Url>,
    pub text: Arc<str>,
}

impl<'a> Project<'a> {
    pub(crate) fn of(uri: &Url, docs: &'a Documents, cache: &'a Cache) -> Option<Self> {
        let doc = docs.get(uri)?;
        let tokens = syntax::tokens(&doc.text);
        Some(Project {
            doc,
            tokens,
            docs,
            cache,
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.doc.text
    }

    /// The inventory `check` would use (none when there is none or it does not load: the
    /// diagnostics say why).
    pub(crate) fn inventory(&self) -> Option<Inventory> {
        crate::check::inventory_for(self.doc.path.as_deref()?, None)
            .ok()
            .flatten()
    }

    /// The inventory's items in the state a dry run starts from (what `status(vm)` gives).
    pub(crate) fn items(inventory: &Inventory) -> Vec<Item> {
        let clock = Arc::new(crate::clock::VirtualClock::new(inventory.start));
        let sim = crate::backend::sim::Simulator::new(inventory, clock, false);
        crate::script::exec::block_on(sim.list_items()).unwrap_or_default()
    }

    /// The module `import` names, read as the checks read it.
    pub(crate) fn module(&self, import: &str) -> Option<Module> {
        let root = self.doc.path.as_deref().map(crate::paths::folder_of);
        let resolver = Resolver::new(root.as_deref());
        let (name, text) = with_overlay(self.docs.overlay(), || resolver.load(import)).ok()?;
        let file = resolver
            .modules()
            .into_iter()
            .find(|(n, ..)| *n == name)
            .and_then(|(_, file, _)| file);
        let uri = match file {
            Some(path) => self.docs.uri_of(&path),
            None => Url::from_file_path(self.cache.stdlib_file(&name)?).ok(),
        };
        Some(Module { uri, text })
    }

    /// The module imported as `alias`.
    pub(crate) fn module_of_alias(&self, alias: &str) -> Option<Module> {
        self.module(&syntax::import_of(&self.tokens, alias)?)
    }

    /// The protocol's range of bytes `start..end` of the document.
    pub(crate) fn range(&self, start: usize, end: usize) -> Range {
        range_in(self.text(), start, end)
    }
}

/// The protocol's range of bytes `start..end` of `text`.
pub(crate) fn range_in(text: &str, start: usize, end: usize) -> Range {
    let position = |offset: usize| {
        let (line, column) = line_col_of(text, offset);
        let (line, character) = utf16_position(text, line, column);
        Position::new(line, character)
    };
    Range::new(position(start), position(end))
}
