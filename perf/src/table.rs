//! Markdown tables.

/// A markdown table built row by row.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|s| s.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = line(&self.header);
        s += &line(
            &self
                .header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---" } else { "---:" }.into())
                .collect::<Vec<_>>(),
        );
        for r in &self.rows {
            s += &line(r);
        }
        s
    }
}
