//! Hive compatibility: rewrite Hive's `LATERAL VIEW [OUTER] explode(..)`, `explode`/`explode_outer`/
//! `posexplode` in the SELECT list, into DataFusion's `unnest` before planning.
//!
//! DataFusion plans `unnest` but rejects `LATERAL VIEW` and has no `explode`. sqlparser already parses
//! `LATERAL VIEW` into `Select::lateral_views` (for every dialect), so we rewrite the parsed query:
//!
//! ```sql
//! SELECT t.a, v.c FROM t LATERAL VIEW explode(t.xs) v AS c
//! -- becomes
//! SELECT t.a, t.c FROM (SELECT *, unnest(t.xs) AS c FROM t) AS t
//! ```
//!
//! * Several lateral views nest: each wraps the previous one, which gives Hive's cartesian product,
//!   and a later view may explode a column produced by an earlier one (`explode(v1.c.items)`).
//! * References qualified by a lateral view's alias (`v.c`) are requalified by the base relation's
//!   alias, which names the derived table.
//! * `OUTER` (and `explode_outer`) keeps rows whose array is empty or NULL as one row with NULL, like
//!   Hive: the array is replaced by `[NULL]` when `cardinality(x)` is not positive.
//! * `posexplode(x) v AS pos, c` zips `unnest(range(0, cardinality(x)))` with `unnest(x)`; positions start
//!   at 0 as in Hive.
//! * Hive functions with no DataFusion counterpart (`inline`, `json_tuple`, `stack`, `parse_url_tuple`,
//!   a lateral view over a join) are errors that say where they are and what to write instead.

use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, LateralView, ObjectNamePart,
    Query, Select, SelectItem, SetExpr, Spanned, Statement, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Why a query cannot be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The text does not parse.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// A construct rlox sql cannot run, with its position (1-based).
    #[error("{what} at line {line}, column {column} is not supported by rlox sql: {hint}")]
    Unsupported {
        /// The construct.
        what: String,
        /// Line.
        line: u64,
        /// Column.
        column: u64,
        /// What to write instead.
        hint: String,
    },
}

const PLACEHOLDER: &str = "__rlox_arg";

fn unsupported(what: impl Into<String>, at: &impl Spanned, hint: impl Into<String>) -> RewriteError {
    let s = at.span().start;
    RewriteError::Unsupported { what: what.into(), line: s.line, column: s.column, hint: hint.into() }
}

/// Parse `sql` (Hive syntax accepted) into statements.
pub fn parse(sql: &str) -> Result<Vec<Statement>, RewriteError> {
    Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| RewriteError::Syntax(e.to_string()))
}

fn parse_query(sql: &str) -> Query {
    match Parser::parse_sql(&GenericDialect {}, sql).expect("internal template parses").pop() {
        Some(Statement::Query(q)) => *q,
        other => panic!("template is not a query: {other:?}"),
    }
}

/// A function call's lower-case name and its single positional argument.
fn call(expr: &Expr) -> Option<(String, Vec<&Expr>)> {
    let Expr::Function(f) = expr else { return None };
    let name = f.name.0.last()?.as_ident()?.value.to_ascii_lowercase();
    let args = match &f.args {
        FunctionArguments::List(l) => l
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((name, args))
}

/// Hive table-generating functions that have no rewrite here, with advice.
fn unsupported_udtf(name: &str) -> Option<&'static str> {
    Some(match name {
        "inline" | "inline_outer" => {
            "explode the array of structs instead (LATERAL VIEW explode(xs) v AS s) and select s.field1, s.field2"
        }
        "json_tuple" | "get_json_object" => "store the fields as columns (or a struct) when writing the data",
        "stack" => "use UNION ALL of the rows, or VALUES",
        "parse_url_tuple" => "split the URL with split_part/regexp functions",
        _ => return None,
    })
}

/// `explode`/`posexplode` (and `_outer`) → (positional?, outer?).
fn generator(name: &str) -> Option<(bool, bool)> {
    Some(match name {
        "explode" => (false, false),
        "explode_outer" => (false, true),
        "posexplode" => (true, false),
        "posexplode_outer" => (true, true),
        _ => return None,
    })
}

/// The `unnest` select items of one generator, as SQL text with [`PLACEHOLDER`] for the array.
fn unnest_items(positional: bool, outer: bool, names: &[String]) -> String {
    let x = PLACEHOLDER;
    let arr =
        if outer { format!("CASE WHEN cardinality({x}) > 0 THEN {x} ELSE make_array(NULL) END") } else { x.into() };
    if positional {
        let pos = if outer {
            format!("CASE WHEN cardinality({x}) > 0 THEN range(0, CAST(cardinality({x}) AS BIGINT)) ELSE make_array(NULL) END")
        } else {
            format!("range(0, CAST(cardinality({x}) AS BIGINT))")
        };
        format!("unnest({pos}) AS {}, unnest({arr}) AS {}", names[0], names[1])
    } else {
        format!("unnest({arr}) AS {}", names[0])
    }
}

fn substitute(target: &mut impl VisitMut, arg: &Expr) {
    let _ = visit_expressions_mut(target, |e| {
        if matches!(e, Expr::Identifier(i) if i.value == PLACEHOLDER) {
            *e = arg.clone();
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Requalify `v.c...` (v a lateral view alias) as `base.c...`.
fn requalify(target: &mut impl VisitMut, views: &[String], base: &Ident) {
    let _ = visit_expressions_mut(target, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if parts.len() >= 2 && views.iter().any(|v| v.eq_ignore_ascii_case(&parts[0].value)) {
                parts[0] = base.clone();
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn ident_sql(i: &Ident) -> String {
    i.to_string()
}

fn base_alias(factor: &TableFactor) -> Ident {
    match factor {
        TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => a.name.clone(),
        TableFactor::Table { name, .. } => match name.0.last() {
            Some(ObjectNamePart::Identifier(i)) => i.clone(),
            _ => Ident::new("__rlox_base"),
        },
        TableFactor::UNNEST { alias: Some(a), .. } | TableFactor::Function { alias: Some(a), .. } => a.name.clone(),
        _ => Ident::new("__rlox_base"),
    }
}

fn rewrite_lateral_views(
    select: &mut Select,
    order_by: Option<&mut datafusion::sql::sqlparser::ast::OrderBy>,
) -> Result<(), RewriteError> {
    if select.lateral_views.is_empty() {
        return Ok(());
    }
    let views: Vec<LateralView> = std::mem::take(&mut select.lateral_views);
    if select.from.len() != 1 || !select.from[0].joins.is_empty() {
        return Err(unsupported(
            "LATERAL VIEW after a join or a comma-separated FROM list",
            &views[0].lateral_view,
            "put the join in a subquery: FROM (SELECT ... FROM a JOIN b ON ...) j LATERAL VIEW explode(j.xs) v AS x",
        ));
    }
    let base = base_alias(&select.from[0].relation);
    let view_names: Vec<String> = views
        .iter()
        .filter_map(|v| v.lateral_view_name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()))
        .collect();

    // Requalify the outer query's references first (before the derived tables are built).
    for item in select.projection.iter_mut() {
        requalify(item, &view_names, &base);
    }
    if let Some(w) = select.selection.as_mut() {
        requalify(w, &view_names, &base);
    }
    requalify(&mut select.group_by, &view_names, &base);
    if let Some(h) = select.having.as_mut() {
        requalify(h, &view_names, &base);
    }
    for w in select.named_window.iter_mut() {
        requalify(w, &view_names, &base);
    }
    if let Some(q) = select.qualify.as_mut() {
        requalify(q, &view_names, &base);
    }
    if let Some(o) = order_by {
        requalify(o, &view_names, &base);
    }

    let mut relation = select.from[0].relation.clone();
    for mut view in views {
        requalify(&mut view.lateral_view, &view_names, &base);
        let Some((name, args)) = call(&view.lateral_view) else {
            return Err(unsupported(
                format!("LATERAL VIEW over `{}`", view.lateral_view),
                &view.lateral_view,
                "use LATERAL VIEW explode(xs) or posexplode(xs)",
            ));
        };
        if let Some(hint) = unsupported_udtf(&name) {
            return Err(unsupported(format!("Hive function {name}()"), &view.lateral_view, hint));
        }
        let Some((positional, outer)) = generator(&name) else {
            return Err(unsupported(
                format!("LATERAL VIEW {name}()"),
                &view.lateral_view,
                "only explode, explode_outer, posexplode and posexplode_outer generate rows here",
            ));
        };
        if args.len() != 1 {
            return Err(unsupported(
                format!("{name}() with {} arguments", args.len()),
                &view.lateral_view,
                "explode takes one array",
            ));
        }
        let arg = args[0].clone();
        let want = if positional { 2 } else { 1 };
        let mut names: Vec<String> = view.lateral_col_alias.iter().map(ident_sql).collect();
        if names.is_empty() {
            names = if positional { vec!["pos".into(), "col".into()] } else { vec!["col".into()] };
        }
        if names.len() != want {
            return Err(unsupported(
                format!("{name}() with {} column aliases", names.len()),
                &view.lateral_view,
                if positional {
                    "posexplode gives two columns: AS pos, val"
                } else {
                    "explode of an array gives one column: AS x"
                },
            ));
        }
        let items = unnest_items(positional, outer || view.outer, &names);
        let b = ident_sql(&base);
        let mut q = parse_query(&format!("SELECT * FROM (SELECT *, {items} FROM __rlox_rel) AS {b}"));
        substitute(&mut q, &arg);
        let SetExpr::Select(outer_sel) = q.body.as_mut() else { unreachable!() };
        let mut derived = outer_sel.from.remove(0).relation;
        if let TableFactor::Derived { subquery, .. } = &mut derived {
            if let SetExpr::Select(inner) = subquery.body.as_mut() {
                inner.from[0].relation = relation;
            }
        }
        relation = derived;
    }
    select.from[0].relation = relation;
    Ok(())
}

/// `explode(x)` etc. in the SELECT list → `unnest(..) AS col`.
fn rewrite_select_list(select: &mut Select) -> Result<(), RewriteError> {
    let mut out = Vec::with_capacity(select.projection.len());
    for item in std::mem::take(&mut select.projection) {
        let (expr, alias) = match &item {
            SelectItem::UnnamedExpr(e) => (e, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
            _ => {
                out.push(item);
                continue;
            }
        };
        let Some((name, args)) = call(expr) else {
            out.push(item);
            continue;
        };
        let Some((positional, outer)) = generator(&name) else {
            out.push(item);
            continue;
        };
        if args.len() != 1 {
            return Err(unsupported(
                format!("{name}() with {} arguments", args.len()),
                expr,
                "explode takes one array",
            ));
        }
        let arg = args[0].clone();
        let names = match (positional, alias) {
            (false, a) => vec![a.map(|a| ident_sql(&a)).unwrap_or_else(|| "col".into())],
            (true, None) => vec!["pos".into(), "col".into()],
            (true, Some(_)) => {
                return Err(unsupported(
                    "posexplode(..) AS name",
                    expr,
                    "posexplode gives two columns: use LATERAL VIEW posexplode(xs) v AS pos, val",
                ))
            }
        };
        let mut q = parse_query(&format!("SELECT {}", unnest_items(positional, outer, &names)));
        substitute(&mut q, &arg);
        let SetExpr::Select(s) = *q.body else { unreachable!() };
        out.extend(s.projection);
    }
    select.projection = out;
    Ok(())
}

fn check_no_unsupported(stmt: &mut Statement) -> Result<(), RewriteError> {
    let mut err = None;
    let _ = visit_expressions_mut(stmt, |e| {
        if let Some((name, _)) = call(e) {
            if let Some(hint) = unsupported_udtf(&name) {
                err = Some(unsupported(format!("Hive function {name}()"), &*e, hint));
                return ControlFlow::Break(());
            }
            if generator(&name).is_some() {
                err = Some(unsupported(
                    format!("{name}() inside an expression"),
                    &*e,
                    "use it alone in the SELECT list or in LATERAL VIEW",
                ));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    err.map_or(Ok(()), Err)
}

struct Rewriter {
    error: Option<RewriteError>,
}

fn rewrite_set_expr(
    body: &mut SetExpr,
    order_by: Option<&mut datafusion::sql::sqlparser::ast::OrderBy>,
) -> Result<(), RewriteError> {
    match body {
        SetExpr::Select(select) => {
            rewrite_lateral_views(select, order_by)?;
            rewrite_select_list(select)
        }
        SetExpr::SetOperation { left, right, .. } => {
            rewrite_set_expr(left, None)?;
            rewrite_set_expr(right, None)
        }
        _ => Ok(()),
    }
}

impl VisitorMut for Rewriter {
    type Break = ();
    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let Query { body, order_by, .. } = query;
        match rewrite_set_expr(body, order_by.as_mut()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.error = Some(e);
                ControlFlow::Break(())
            }
        }
    }
}

/// Names unaliased field and column references the way Hive and Spark do: `SELECT c.text, t.id` gives
/// columns `text` and `id` (DataFusion would name them `c[text]`, `t.id`). A name that would then appear
/// twice in the same SELECT list is left to DataFusion, which rejects duplicate output names.
struct SparkOutputNames;

fn output_name(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.clone()),
        SelectItem::UnnamedExpr(Expr::Identifier(i)) => Some(i.value.clone()),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) => parts.last().map(|i| i.value.clone()),
        _ => None,
    }
}

fn name_like_spark(select: &mut Select) {
    let names: Vec<Option<String>> = select.projection.iter().map(output_name).collect();
    for (i, item) in select.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(Expr::CompoundIdentifier(parts)) = item else { continue };
        let Some(last) = parts.last().cloned() else { continue };
        let unique = names.iter().enumerate().all(|(j, n)| j == i || n.as_deref() != Some(last.value.as_str()));
        if unique {
            let expr = Expr::CompoundIdentifier(std::mem::take(parts));
            *item = SelectItem::ExprWithAlias { expr, alias: last };
        }
    }
}

fn name_set_expr_like_spark(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_like_spark(select),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr_like_spark(left);
            name_set_expr_like_spark(right);
        }
        _ => {}
    }
}

impl VisitorMut for SparkOutputNames {
    type Break = ();
    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        name_set_expr_like_spark(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// Rewrite one parsed statement in place.
pub fn rewrite_statement(stmt: &mut Statement) -> Result<(), RewriteError> {
    let _ = stmt.visit(&mut SparkOutputNames);
    // Generators in LATERAL VIEW and in the SELECT list are rewritten first; whatever Hive function is
    // left afterwards is reported with its position.
    let mut first = None;
    let _ = visit_expressions_mut(stmt, |e| {
        if first.is_none() {
            if let Some((name, _)) = call(e) {
                if unsupported_udtf(&name).is_some() {
                    first = Some(unsupported(format!("Hive function {name}()"), &*e, unsupported_udtf(&name).unwrap()));
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(e) = first {
        return Err(e);
    }
    let mut r = Rewriter { error: None };
    let _ = stmt.visit(&mut r);
    if let Some(e) = r.error {
        return Err(e);
    }
    check_no_unsupported(stmt)
}

/// Parse and rewrite `sql`; returns the statements DataFusion will plan.
pub fn rewrite(sql: &str) -> Result<Vec<Statement>, RewriteError> {
    let mut stmts = parse(sql)?;
    for s in stmts.iter_mut() {
        rewrite_statement(s)?;
    }
    Ok(stmts)
}

/// The rewritten SQL text (for `--explain-rewrite` and tests).
pub fn rewrite_to_string(sql: &str) -> Result<String, RewriteError> {
    Ok(rewrite(sql)?.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(";\n"))
}
