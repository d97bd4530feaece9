//! Which of the item's generic parameters a generated type needs.
//!
//! A request or response struct takes only the parameters its fields
//! mention, so that `SumRequest(7)` stays a plain tuple even when the item is
//! generic. The request and response enums take all of them.

use std::collections::HashSet;
use syn::visit::{self, Visit};
use syn::{GenericParam, Generics, Ident, Path, WhereClause};

/// The names of the item's type and const parameters.
pub(crate) fn param_names(generics: &Generics) -> HashSet<Ident> {
    generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(t.ident.clone()),
            GenericParam::Const(c) => Some(c.ident.clone()),
            GenericParam::Lifetime(_) => None,
        })
        .collect()
}

/// The parameters among `params` that `node` mentions (walked with `walk`).
pub(crate) fn mentioned(params: &HashSet<Ident>, walk: impl FnOnce(&mut Finder<'_>)) -> HashSet<Ident> {
    let mut finder = Finder { params, found: HashSet::new() };
    walk(&mut finder);
    finder.found
}

/// Collects the parameters a syntax tree mentions: any path that starts
/// with a parameter's name (`T`, `T::Assoc`, `N` in `[u8; N]`).
pub(crate) struct Finder<'a> {
    params: &'a HashSet<Ident>,
    found: HashSet<Ident>,
}

impl<'ast> Visit<'ast> for Finder<'_> {
    fn visit_path(&mut self, path: &'ast Path) {
        if path.leading_colon.is_none() {
            if let Some(first) = path.segments.first() {
                if self.params.contains(&first.ident) {
                    self.found.insert(first.ident.clone());
                }
            }
        }
        visit::visit_path(self, path);
    }
}

/// The item's generics cut down to the parameters in `used`, keeping the
/// bounds and where-predicates that mention nothing else.
pub(crate) fn subset(generics: &Generics, used: &HashSet<Ident>) -> Generics {
    let all = param_names(generics);
    let only_used = |found: HashSet<Ident>| found.is_subset(used);
    let mut out = Generics::default();
    for param in &generics.params {
        match param {
            GenericParam::Type(t) if used.contains(&t.ident) => {
                let mut t = t.clone();
                t.bounds = t
                    .bounds
                    .into_iter()
                    .filter(|b| only_used(mentioned(&all, |f| f.visit_type_param_bound(b))))
                    .collect();
                t.eq_token = None;
                t.default = None;
                out.params.push(GenericParam::Type(t));
            }
            GenericParam::Const(c) if used.contains(&c.ident) => {
                let mut c = c.clone();
                c.eq_token = None;
                c.default = None;
                out.params.push(GenericParam::Const(c));
            }
            _ => {}
        }
    }
    if let Some(clause) = &generics.where_clause {
        let predicates: Vec<_> = clause
            .predicates
            .iter()
            .filter(|p| {
                let found = mentioned(&all, |f| f.visit_where_predicate(p));
                !found.is_empty() && only_used(found)
            })
            .cloned()
            .collect();
        if !predicates.is_empty() {
            out.where_clause = Some(WhereClause {
                where_token: clause.where_token,
                predicates: predicates.into_iter().collect(),
            });
        }
    }
    out
}
