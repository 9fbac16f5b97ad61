//! The documents the editor has open: their text and version as the editor last sent them,
//! shared by the message loop (which changes them) and the check thread (which reads them),
//! and the overlay of unsaved buffers that imports read instead of the files.

use crate::diagnostics::offset_of_utf16;
use crate::script::resolver::Overlay;
use lsp_types::{TextDocumentContentChangeEvent, Url};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An open document.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub text: Arc<str>,
    pub version: i32,
    /// Its file (`file:` URLs only).
    pub path: Option<PathBuf>,
}

/// The open documents, by URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct Documents(Arc<Mutex<HashMap<Url, Document>>>);

impl Documents {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<Url, Document>> {
        // A panic elsewhere never leaves the map half-changed: each change is one insert.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, uri: &Url) -> Option<Document> {
        self.lock().get(uri).cloned()
    }

    pub(crate) fn open(&self, uri: Url, text: String, version: i32) {
        let path = uri.to_file_path().ok();
        self.lock().insert(
            uri,
            Document {
                text: Arc::from(text),
                version,
                path,
            },
        );
    }

    /// Applies the editor's changes in order; a change without a range replaces the text.
    pub(crate) fn change(
        &self,
        uri: &Url,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
    ) -> bool {
        let mut docs = self.lock();
        let Some(doc) = docs.get_mut(uri) else {
            return false;
        };
        let mut text = doc.text.to_string();
        for change in changes {
            text = apply(&text, change);
        }
        doc.text = Arc::from(text);
        doc.version = version;
        true
    }

    pub(crate) fn close(&self, uri: &Url) {
        self.lock().remove(uri);
    }

    /// The open documents' URLs.
    pub(crate) fn uris(&self) -> Vec<Url> {
        self.lock().keys().cloned().collect()
    }

    /// Every open file's text by its path (canonical when the file exists), for imports.
    pub(crate) fn overlay(&self) -> Overlay {
        self.lock()
            .values()
            .filter_map(|doc| Some((canonical(doc.path.as_deref()?), doc.text.clone())))
            .collect()
    }

    /// The URL an editor knows the file at `path` by: an open document's when it is the
    /// same file (through links too), else its `file:` URL.
    pub(crate) fn uri_of(&self, path: &Path) -> Option<Url> {
        let wanted = canonical(path);
        let docs = self.lock();
        docs.iter()
            .find(|(_, doc)| doc.path.as_deref().map(canonical).as_ref() == Some(&wanted))
            .map(|(uri, _)| uri.clone())
            .or_else(|| Url::from_file_path(&wanted).ok())
    }
}

/// The path with links resolved when the file exists, else made absolute.
pub(crate) fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// `text` with one change applied. A range the text does not have clamps to its end.
fn apply(text: &str, change: &TextDocumentContentChangeEvent) -> String {
    let Some(range) = change.range else {
        return change.text.clone();
    };
    let at =
        |p: lsp_types::Position| offset_of_utf16(text, p.line, p.character).unwrap_or(text.len());
    let start = at(range.start);
    let end = at(range.end).max(start);
    format!("{}{}{}", &text[..start], change.text, &text[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::{Position, Range};

    fn edit(range: Option<((u32, u32), (u32, u32))>, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: range.map(|(s, e)| Range::new(Position::new(s.0, s.1), Position::new(e.0, e.1))),
            range_length: None,
            text: text.into(),
        }
    }

    #[test]
    fn changes_apply_in_utf16_ranges() {
        let docs = Documents::default();
        let uri = Url::parse("file:///tmp/a.rhai").unwrap();
        docs.open(uri.clone(), "note(\"😀\");\nfailvoer(x);\n".into(), 1);
        // Line 1: replace `failvoer` (after a line with an astral character).
        assert!(docs.change(&uri, 2, &[edit(Some(((1, 0), (1, 8))), "failover")]));
        // Line 0: insert after the emoji, which is two UTF-16 units.
        assert!(docs.change(&uri, 3, &[edit(Some(((0, 8), (0, 8))), "!")]));
        let doc = docs.get(&uri).unwrap();
        assert_eq!(&*doc.text, "note(\"😀!\");\nfailover(x);\n");
        assert_eq!(doc.version, 3);
        assert!(docs.change(&uri, 4, &[edit(None, "whole")]));
        assert_eq!(&*docs.get(&uri).unwrap().text, "whole");
        // A range past the end appends; an unknown document is no change.
        assert!(docs.change(&uri, 5, &[edit(Some(((9, 0), (9, 0))), "!")]));
        assert_eq!(&*docs.get(&uri).unwrap().text, "whole!");
        let other = Url::parse("file:///tmp/b.rhai").unwrap();
        assert!(!docs.change(&other, 1, &[edit(None, "x")]));
    }

    #[test]
    fn the_overlay_holds_open_files_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.rhai");
        std::fs::write(&file, "saved").unwrap();
        let docs = Documents::default();
        let uri = Url::from_file_path(&file).unwrap();
        docs.open(uri.clone(), "unsaved".into(), 1);
        docs.open(Url::parse("untitled:Untitled-1").unwrap(), "x".into(), 1);
        let overlay = docs.overlay();
        assert_eq!(overlay.len(), 1, "only files");
        assert_eq!(&*overlay[&canonical(&file)], "unsaved");
        assert_eq!(docs.uri_of(&file), Some(uri));
        docs.close(&Url::from_file_path(&file).unwrap());
        assert!(docs.overlay().is_empty());
    }
}
