//! Which proxy ACLs apply to a connection under this configuration.

use crate::acl::{AclRule, Permissions, StaleResolution};
use crate::pools::Resolution;

use super::ReloadableConfig;

impl ReloadableConfig {
    /// The permissions of a connection that resolved to `resolution` under this configuration, or `None`
    /// when no certificate authority of its matched pools enforces ACLs (every request passes).
    ///
    /// A CA enforces when its `authorization.enabled` says so, or — when it says nothing — when
    /// the global `authorization.enabled` does. If the matched pools span CAs that disagree, the
    /// connection is checked: enforcing is the safe side. `Err` when ACLs are enforced somewhere
    /// and one of the connection's CAs or pools is gone (after a reload).
    pub fn permissions_for(
        &self,
        resolution: &Resolution,
    ) -> Result<Option<Permissions>, StaleResolution> {
        let config = self;
        let global = &config.authorization;
        let enforced_anywhere = global.enabled
            || config
                .authorities
                .iter()
                .any(|ca| ca.authorization.enabled == Some(true));
        if !enforced_anywhere {
            return Ok(None);
        }
        let mut enforce = false;
        let mut rules: Vec<&AclRule> = global.rules.iter().collect();
        let mut seen_cas: Vec<&str> = Vec::new();
        for matched in &resolution.matched {
            // Fail closed: a CA or pool the configuration no longer has would otherwise take
            // its enforcement, or its denies, with it.
            let ca = config
                .authorities
                .iter()
                .find(|ca| ca.id == matched.ca_id)
                .ok_or_else(|| StaleResolution::CertificateAuthority(matched.ca_id.clone()))?;
            let pool = ca
                .pools
                .pools
                .iter()
                .find(|p| p.id == matched.pool_id)
                .ok_or_else(|| StaleResolution::Pool(matched.pool_id.clone()))?;
            if !seen_cas.contains(&ca.id.as_str()) {
                seen_cas.push(&ca.id);
                enforce |= ca.authorization.enabled.unwrap_or(global.enabled);
                rules.extend(ca.authorization.rules.iter());
            }
            rules.extend(pool.acls.iter());
        }
        if !enforce {
            return Ok(None);
        }
        let pool_ids = resolution
            .pool_ids()
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Some(Permissions::from_rules(rules, pool_ids)))
    }
}
