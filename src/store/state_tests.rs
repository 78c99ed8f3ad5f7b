use super::*;
use crate::store::record::CaDoc;

/// Refuses any pool whose filter is `bad`, as the configuration refuses a bad CEL filter.
struct Fake;

impl Validate for Fake {
    fn validate(&self, cas: &[RawCertificateAuthority]) -> Result<(), String> {
        for ca in cas {
            if !std::fs::read_to_string(&ca.certificate_chain)
                .map_err(|e| e.to_string())?
                .starts_with("PEM")
            {
                return Err(format!("{}: not a chain", ca.id));
            }
            for p in &ca.identity_pools {
                if p.filter == "bad" {
                    return Err(format!("certificate_authorities.{}.filter: bad CEL", p.id));
                }
            }
        }
        Ok(())
    }
}

fn ca(id: &str, name: &str) -> Change {
    Change::PutCa(Box::new(CaDoc {
        id: id.into(),
        display_name: name.into(),
        description: String::new(),
        certificate_chain_pem: format!("PEM of {id}"),
        crl_chain_pem: None,
        crl_url: None,
        require_crl_on_client_certificate: false,
        authorization: None,
    }))
}

fn pool(ca: &str, id: &str, filter: &str) -> Change {
    Change::PutPool {
        ca: ca.into(),
        pool: RawIdentityPool {
            id: id.into(),
            display_name: id.into(),
            description: String::new(),
            external_identifier: "CN".into(),
            filter: filter.into(),
            priority: None,
            acls: vec![],
        },
    }
}

fn filters(state: &StoreState, dir: &Path) -> Vec<(String, String, String)> {
    state
        .raw_cas(dir)
        .unwrap()
        .into_iter()
        .flat_map(|c| {
            c.identity_pools
                .into_iter()
                .map(move |p| (c.id.clone(), p.id, p.filter))
        })
        .collect()
}

#[test]
fn the_last_record_of_a_key_wins_and_a_bad_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StoreState::default();
    let apply = |s: &mut StoreState, c| s.apply(c, dir.path(), &Fake);
    assert_eq!(apply(&mut state, ca("acme", "A")), Ok(Applied::Changed));
    assert_eq!(
        apply(&mut state, pool("acme", "p1", "one")),
        Ok(Applied::Changed)
    );
    assert_eq!(
        apply(&mut state, pool("acme", "p1", "two")),
        Ok(Applied::Changed)
    );
    let e = apply(&mut state, pool("acme", "p1", "bad")).unwrap_err();
    assert_eq!(e.label(), "invalid");
    assert!(
        e.to_string().contains("pool/acme/p1") && e.to_string().contains("bad CEL"),
        "{e}"
    );
    // The tail goes on after a refused record.
    assert_eq!(
        apply(&mut state, pool("acme", "p2", "x")),
        Ok(Applied::Changed)
    );
    assert_eq!(
        filters(&state, dir.path()),
        vec![
            ("acme".into(), "p1".into(), "two".into()),
            ("acme".into(), "p2".into(), "x".into())
        ]
    );
    // The same value again changes nothing.
    assert_eq!(
        apply(&mut state, pool("acme", "p2", "x")),
        Ok(Applied::Unchanged)
    );
}

#[test]
fn a_ca_tombstone_takes_its_pools_and_a_pool_tombstone_its_pool() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StoreState::default();
    for c in [
        ca("acme", "A"),
        pool("acme", "p1", "f"),
        pool("acme", "p2", "f"),
        ca("beta", "B"),
        pool("beta", "p3", "f"),
    ] {
        state.apply(c, dir.path(), &Fake).unwrap();
    }
    let gone = Change::DeletePool {
        ca: "acme".into(),
        pool: "p1".into(),
    };
    assert_eq!(
        state.apply(gone.clone(), dir.path(), &Fake),
        Ok(Applied::Changed)
    );
    assert_eq!(state.apply(gone, dir.path(), &Fake), Ok(Applied::Unchanged));
    assert_eq!(
        state.apply(Change::DeleteCa("acme".into()), dir.path(), &Fake),
        Ok(Applied::Changed)
    );
    assert_eq!(
        filters(&state, dir.path()),
        vec![("beta".into(), "p3".into(), "f".into())]
    );
    // The deleted CA's pool does not come back with a CA of the same id.
    state
        .apply(ca("acme", "A again"), dir.path(), &Fake)
        .unwrap();
    assert_eq!(filters(&state, dir.path()).len(), 1);
    // Files of CAs no longer named are removed.
    let cas = state.raw_cas(dir.path()).unwrap();
    remove_unreferenced(dir.path(), &cas);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2);
}

#[test]
fn a_pool_before_its_ca_is_held_until_the_ca_comes() {
    // Compaction keeps a CA's newest record, which can come after its pools'.
    let dir = tempfile::tempdir().unwrap();
    let mut state = StoreState::default();
    assert_eq!(
        state.apply(pool("acme", "p1", "f"), dir.path(), &Fake),
        Ok(Applied::Held)
    );
    assert_eq!(
        state.held_pools(),
        vec![("acme".to_string(), "p1".to_string())]
    );
    assert!(filters(&state, dir.path()).is_empty());
    assert_eq!(
        state.apply(ca("acme", "A"), dir.path(), &Fake),
        Ok(Applied::Changed)
    );
    assert_eq!(
        filters(&state, dir.path()),
        vec![("acme".into(), "p1".into(), "f".into())]
    );
    assert!(state.held_pools().is_empty());
}

#[test]
fn a_ca_the_validation_refuses_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StoreState::default();
    let mut doc = match ca("acme", "A") {
        Change::PutCa(d) => d,
        _ => unreachable!(),
    };
    doc.certificate_chain_pem = "garbage".into();
    let e = state
        .apply(Change::PutCa(doc), dir.path(), &Fake)
        .unwrap_err();
    assert!(e.to_string().contains("not a chain"), "{e}");
    assert!(state.is_empty());
}

#[test]
fn diff_orders_puts_before_tombstones_and_reads_the_pem() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = StoreState::default();
    for c in [
        ca("acme", "A"),
        pool("acme", "p1", "f"),
        pool("acme", "p2", "f"),
    ] {
        state.apply(c, dir.path(), &Fake).unwrap();
    }
    let before = state.raw_cas(dir.path()).unwrap();
    let mut after = before.clone();
    after[0].identity_pools.retain(|p| p.id != "p1");
    after[0].identity_pools[0].filter = "g".into();
    let keys: Vec<String> = diff(&before, &after)
        .unwrap()
        .iter()
        .map(Change::key)
        .collect();
    assert_eq!(keys, ["pool/acme/p2", "pool/acme/p1"]);
    let keys: Vec<String> = diff(&before, &[])
        .unwrap()
        .iter()
        .map(Change::key)
        .collect();
    assert_eq!(keys, ["pool/acme/p1", "pool/acme/p2", "ca/acme"]);
    let changes = diff(&[], &before).unwrap();
    match &changes[0] {
        Change::PutCa(doc) => assert_eq!(doc.certificate_chain_pem, "PEM of acme"),
        other => panic!("{other:?}"),
    }
    assert_eq!(changes.len(), 3);
}
