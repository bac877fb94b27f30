//! A trie of normalized JSON paths, so "is this node selected, denied, or under either?" is one walk.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json_path::{NormalizedPath, PathElement};

/// One step of a normalized path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Converts a located path from `serde_json_path` into owned segments.
pub fn segs_of(path: &NormalizedPath<'_>) -> Vec<Seg> {
    path.iter()
        .map(|e| match e {
            PathElement::Name(n) => Seg::Key((*n).to_owned()),
            PathElement::Index(i) => Seg::Index(*i),
        })
        .collect()
}

/// Writes `n` as an RFC 9535 single-quoted name (`'it\'s'`), as normalized paths spell names.
pub(crate) fn quote_name(s: &mut String, n: &str) {
    s.push('\'');
    for c in n.chars() {
        match c {
            '\'' => s.push_str("\\'"),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('\'');
}

/// Formats segments as an RFC 9535 normalized path, e.g. `$['steps'][0]['reasoning']`.
pub fn display(segs: &[Seg]) -> String {
    let mut s = String::from("$");
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                s.push('[');
                quote_name(&mut s, k);
                s.push(']');
            }
            Seg::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s
}

/// The tries' maps: keyed by aHash under one random key per process (a projected read marks and
/// looks up a few dozen names, and SipHash was a tenth of its instructions). The key stays
/// random, as std's is, because a document's member names come from whoever wrote the trace; one
/// per process rather than per map because a trie makes two maps per node it touches.
type Map<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

fn map<K, V>() -> Map<K, V> {
    static KEY: OnceLock<ahash::RandomState> = OnceLock::new();
    Map::with_hasher(KEY.get_or_init(ahash::RandomState::new).clone())
}

/// A set of paths, each carrying a mark `T` (e.g. the index of the rule that put it there).
#[derive(Debug)]
pub struct PathTrie<T> {
    pub mark: Option<T>,
    keys: Map<String, PathTrie<T>>,
    indices: Map<usize, PathTrie<T>>,
}

impl<T> Default for PathTrie<T> {
    fn default() -> Self {
        PathTrie { mark: None, keys: map(), indices: map() }
    }
}

impl<T: Clone> PathTrie<T> {
    /// Marks `path`; an existing mark is kept, so the first rule to reach a node names it.
    pub fn insert(&mut self, path: &[Seg], mark: T) {
        let mut node = self;
        for seg in path {
            node = match seg {
                Seg::Key(k) => node.keys.entry_ref(k.as_str()).or_default(),
                Seg::Index(i) => node.indices.entry(*i).or_default(),
            };
        }
        if node.mark.is_none() {
            node.mark = Some(mark);
        }
    }

    pub fn key(&self, k: &str) -> Option<&PathTrie<T>> {
        self.keys.get(k)
    }

    pub fn index(&self, i: usize) -> Option<&PathTrie<T>> {
        self.indices.get(&i)
    }

    /// The child trie at key `k`, created if absent (the key is copied only then: a walk marks
    /// the same names again and again).
    pub fn key_entry(&mut self, k: &str) -> &mut PathTrie<T> {
        self.keys.entry_ref(k).or_default()
    }

    /// The child trie at index `i`, created if absent.
    pub fn index_entry(&mut self, i: usize) -> &mut PathTrie<T> {
        self.indices.entry(i).or_default()
    }

    pub fn key_mut(&mut self, k: &str) -> Option<&mut PathTrie<T>> {
        self.keys.get_mut(k)
    }

    pub fn index_mut(&mut self, i: usize) -> Option<&mut PathTrie<T>> {
        self.indices.get_mut(&i)
    }

    /// Moves the subtree at key `old` to key `new` (a masked key keeps its marks).
    pub fn rename_key(&mut self, old: &str, new: &str) {
        if let Some(t) = self.keys.remove(old) {
            self.keys.insert(new.to_owned(), t);
        }
    }

    /// Forgets the subtree at key `k`.
    pub fn remove_key(&mut self, k: &str) {
        self.keys.remove(k);
    }

    /// Calls `f` with each child: `(Some(key), None, child)` or `(None, Some(index), child)`.
    pub fn for_each_child(&self, mut f: impl FnMut(Option<&str>, Option<usize>, &PathTrie<T>)) {
        for (k, c) in &self.keys {
            f(Some(k), None, c);
        }
        for (i, c) in &self.indices {
            f(None, Some(*i), c);
        }
    }

    pub fn has_children(&self) -> bool {
        !self.keys.is_empty() || !self.indices.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.mark.is_none() && !self.has_children()
    }

    /// The mark of the nearest marked node at or above `path` (i.e. a marked prefix), if any.
    pub fn marked_prefix(&self, path: &[Seg]) -> Option<&T> {
        let mut node = self;
        if let Some(m) = &node.mark {
            return Some(m);
        }
        for seg in path {
            node = match seg {
                Seg::Key(k) => node.keys.get(k)?,
                Seg::Index(i) => node.indices.get(i)?,
            };
            if let Some(m) = &node.mark {
                return Some(m);
            }
        }
        None
    }

    /// The first mark found at or below `path`, if any.
    pub fn marked_at_or_below(&self, path: &[Seg]) -> Option<(&T, Vec<Seg>)> {
        let mut node = self;
        for seg in path {
            node = match seg {
                Seg::Key(k) => node.keys.get(k)?,
                Seg::Index(i) => node.indices.get(i)?,
            };
        }
        let mut at = path.to_vec();
        node.first_mark(&mut at).map(|m| (m, at))
    }

    fn first_mark(&self, at: &mut Vec<Seg>) -> Option<&T> {
        if let Some(m) = &self.mark {
            return Some(m);
        }
        let mut keys: Vec<_> = self.keys.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, child) in keys {
            at.push(Seg::Key(k.clone()));
            if let Some(m) = child.first_mark(at) {
                return Some(m);
            }
            at.pop();
        }
        let mut idx: Vec<_> = self.indices.iter().collect();
        idx.sort_by_key(|a| *a.0);
        for (i, child) in idx {
            at.push(Seg::Index(*i));
            if let Some(m) = child.first_mark(at) {
                return Some(m);
            }
            at.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Vec<Seg> {
        s.iter()
            .map(|x| x.parse::<usize>().map(Seg::Index).unwrap_or_else(|_| Seg::Key((*x).into())))
            .collect()
    }

    #[test]
    fn prefix_and_below() {
        let mut t = PathTrie::default();
        t.insert(&p(&["steps", "0", "reasoning"]), 7usize);
        assert_eq!(t.marked_prefix(&p(&["steps", "0", "reasoning", "x"])), Some(&7));
        assert_eq!(t.marked_prefix(&p(&["steps", "0"])), None);
        assert_eq!(t.marked_at_or_below(&p(&["steps"])).map(|x| *x.0), Some(7));
        assert!(t.marked_at_or_below(&p(&["steps", "1"])).is_none());
    }

    #[test]
    fn display_escapes() {
        assert_eq!(display(&p(&["a'b", "2"])), "$['a\\'b'][2]");
    }
}
