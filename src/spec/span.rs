//! Places in the spec file: a JSON Pointer for each node, and where its key and value are written.
//!
//! Reports print a line and a column (1-based, in characters, as editors count); the human
//! renderer also needs the byte range of the node to underline it. Both are kept here, so no
//! renderer re-parses the YAML.

use std::collections::BTreeMap;

use crate::finding::Location;

/// Where a piece of text is in the spec file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeSpan {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte offset of the start in the file's text.
    pub offset: usize,
    /// Length in bytes (0 for an empty node).
    pub length: usize,
}

/// The places of one node: its value and, for a mapping member, its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: Option<NodeSpan>,
    value: NodeSpan,
}

/// JSON Pointer → place in the spec file.
#[derive(Debug, Clone, Default)]
pub struct SpanMap {
    entries: BTreeMap<String, Entry>,
}

impl SpanMap {
    /// Records the place of a node known only by line and column (no byte range).
    pub fn insert(&mut self, location: Location) {
        let value = NodeSpan { line: location.line, column: location.column, offset: 0, length: 0 };
        self.entries.insert(location.path, Entry { key: None, value });
    }

    /// Records the place of a node, and of its key when it is a mapping member.
    pub fn insert_node(&mut self, pointer: &str, key: Option<NodeSpan>, value: NodeSpan) {
        self.entries.insert(pointer.to_owned(), Entry { key, value });
    }

    /// The place of `pointer`'s value, or of its nearest ancestor that is written in the file (a
    /// default value has no place of its own).
    pub fn locate(&self, pointer: &str) -> Option<Location> {
        self.nearest(pointer).map(|(_, entry)| located(pointer, entry.value))
    }

    /// Like [`SpanMap::locate`], but a mapping member is located at its key (where an unknown or
    /// misspelled key is written).
    pub fn locate_key(&self, pointer: &str) -> Option<Location> {
        self.nearest(pointer).map(|(_, entry)| located(pointer, entry.key.unwrap_or(entry.value)))
    }

    /// Every node with a place, by JSON Pointer, with the place of its value.
    pub fn values(&self) -> impl Iterator<Item = (&str, NodeSpan)> {
        self.entries.iter().map(|(pointer, entry)| (pointer.as_str(), entry.value))
    }

    /// The key's place of the member at `pointer`, if it is written in the file.
    pub fn key_span(&self, pointer: &str) -> Option<NodeSpan> {
        self.entries.get(pointer).and_then(|entry| entry.key)
    }

    /// The byte range (offset, length) of the node a location points at: the key or the value of
    /// the entry at its path (or an ancestor's) that starts at its line and column.
    pub fn byte_range(&self, location: &Location) -> Option<(usize, usize)> {
        let mut path = location.path.as_str();
        loop {
            if let Some(entry) = self.entries.get(path) {
                for span in entry.key.iter().chain([&entry.value]) {
                    if span.line == location.line
                        && span.column == location.column
                        && (span.length > 0 || span.offset > 0)
                    {
                        return Some((span.offset, span.length));
                    }
                }
            }
            if path.is_empty() {
                return None;
            }
            path = path.rfind('/').map_or("", |cut| &path[..cut]);
        }
    }

    fn nearest<'s>(&'s self, pointer: &'s str) -> Option<(&'s str, &'s Entry)> {
        let mut path = pointer;
        loop {
            if let Some(entry) = self.entries.get(path) {
                return Some((path, entry));
            }
            if path.is_empty() {
                return None;
            }
            path = path.rfind('/').map_or("", |cut| &path[..cut]);
        }
    }
}

fn located(pointer: &str, span: NodeSpan) -> Location {
    Location { path: pointer.to_owned(), line: span.line, column: span.column }
}

/// Converts the parser's character positions into byte offsets, lines and columns.
#[derive(Debug, Clone)]
pub struct TextIndex {
    /// Byte offset of each character, plus the text's length at the end.
    char_bytes: Vec<usize>,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    len: usize,
}

impl TextIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> Self {
        let mut char_bytes: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        char_bytes.push(text.len());
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        TextIndex { char_bytes, line_starts, len: text.len() }
    }

    /// The span of the parser's span (character indices; 1-based line, 0-based column).
    pub fn span(&self, span: saphyr_parser::Span) -> NodeSpan {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        NodeSpan {
            line: span.start.line(),
            column: span.start.col() + 1,
            offset: start,
            length: end - start,
        }
    }

    /// A one-character span at the parser's marker.
    pub fn at(&self, index: usize, line: usize, col: usize) -> NodeSpan {
        let offset = self.byte(index);
        let length = self.byte(index + 1).saturating_sub(offset);
        NodeSpan { line: line.max(1), column: col + 1, offset, length }
    }

    /// The span of `length` characters at a 1-based line and column.
    pub fn line_column(&self, line: usize, column: usize, length: usize) -> NodeSpan {
        let line_start = self.line_starts.get(line.saturating_sub(1)).copied().unwrap_or(self.len);
        let first = self.char_bytes.partition_point(|&b| b < line_start);
        let start = self.byte(first + column.saturating_sub(1));
        let end = self.byte(first + column.saturating_sub(1) + length);
        NodeSpan { line, column, offset: start, length: end - start }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.char_bytes.get(char_index).copied().unwrap_or(self.len)
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::yaml;

    #[test]
    fn members_are_located_at_their_key_or_value_with_byte_ranges() {
        let text = "a:\n  bé: [x, y]   # note\n  c: 1\n";
        let spans = yaml::parse(text).spans;
        let value = spans.locate("/a/bé").unwrap();
        assert_eq!((value.line, value.column), (2, 7));
        let key = spans.locate_key("/a/bé").unwrap();
        assert_eq!((key.line, key.column), (2, 3));
        let (offset, length) = spans.byte_range(&value).unwrap();
        assert_eq!(&text[offset..offset + length], "[x, y]");
        let (offset, length) = spans.byte_range(&key).unwrap();
        assert_eq!(&text[offset..offset + length], "bé");
        // A default value has no node: its nearest written ancestor stands in, under its own path.
        let missing = spans.locate("/a/d/e").unwrap();
        assert_eq!((missing.path.as_str(), missing.line, missing.column), ("/a/d/e", 2, 3));
    }
}
