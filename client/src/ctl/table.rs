//! The ASCII tables of `-w table`, laid out as etcdctl's tablewriter lays
//! them out: upper-case headers centred, cells right-aligned, one space of
//! padding, `+---+` borders.

/// Renders `header` and `rows` as a bordered table, ending with a newline.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let titles: Vec<String> = header.iter().map(|h| h.to_uppercase()).collect();
    let mut widths: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let border: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .chain(std::iter::once("+\n".to_owned()))
        .collect();

    let mut table = border.clone();
    for (title, width) in titles.iter().zip(&widths) {
        // tablewriter puts the odd space of padding on the right.
        let gap = width - title.chars().count();
        let left = gap / 2;
        table.push_str(&format!("| {}{}{} ", " ".repeat(left), title, " ".repeat(gap - left)));
    }
    table.push_str("|\n");
    table.push_str(&border);
    for row in rows {
        for (index, width) in widths.iter().enumerate() {
            let cell = row.get(index).map(String::as_str).unwrap_or("");
            table.push_str(&format!("| {cell:>width$} "));
        }
        table.push_str("|\n");
    }
    table.push_str(&border);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_etcdctl_endpoint_health_table() {
        let rows = vec![vec![
            "127.0.0.1:23791".to_owned(),
            "true".to_owned(),
            "1.023548ms".to_owned(),
            String::new(),
        ]];
        let expected = "\
+-----------------+--------+------------+-------+
|    ENDPOINT     | HEALTH |    TOOK    | ERROR |
+-----------------+--------+------------+-------+
| 127.0.0.1:23791 |   true | 1.023548ms |       |
+-----------------+--------+------------+-------+
";
        assert_eq!(render(&["endpoint", "health", "took", "error"], &rows), expected);
    }
}
