//! `jcs run --user USER[:GROUP]`: the ids the app runs with, from the VE's own /etc/passwd and
//! /etc/group (as docker does: names mean what the image says they mean). Pure.

/// The app's user, group and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Resolves `spec` (`USER` or `USER:GROUP`; names or numbers) against the texts of the VE's
/// /etc/passwd and /etc/group (empty when missing). A number need not be listed; a name must.
/// Without a group: the user's (from /etc/passwd), else the user's number. The supplementary
/// groups: the group, and every group of /etc/group that lists the user's name.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Ids, String> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g.is_some_and(str::is_empty) {
        return Err(format!("--user {spec:?}: expected USER or USER:GROUP"));
    }
    // name:password:uid:gid:gecos:home:shell
    let users: Vec<(&str, u32, u32)> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                *f.first()?,
                f.get(2)?.parse().ok()?,
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    // name:password:gid:member,member
    let groups: Vec<(&str, u32, Vec<&str>)> = group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((
                *f.first()?,
                f.get(2)?.parse().ok()?,
                f.get(3)
                    .map(|m| m.split(',').filter(|x| !x.is_empty()).collect())
                    .unwrap_or_default(),
            ))
        })
        .collect();
    let entry = match u.parse::<u32>() {
        Ok(n) => users
            .iter()
            .find(|e| e.1 == n)
            .copied()
            .or(Some(("", n, n))),
        Err(_) => users.iter().find(|e| e.0 == u).copied(),
    };
    let Some((name, uid, user_gid)) = entry else {
        return Err(format!(
            "--user {spec:?}: no user {u:?} in the VE's /etc/passwd"
        ));
    };
    let gid = match g {
        None => user_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.0 == g)
                .map(|e| e.1)
                .ok_or_else(|| format!("--user {spec:?}: no group {g:?} in the VE's /etc/group"))?,
        },
    };
    let mut all = vec![gid];
    if !name.is_empty() {
        for (_, n, members) in &groups {
            if members.contains(&name) && !all.contains(n) {
                all.push(*n);
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        groups: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\nann:x:1000:1000::/home/ann:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nann:x:1000:\naudio:x:29:ann,www\nstaff:x:50:ann\n";

    #[test]
    fn names_numbers_and_groups() {
        let r = |s| resolve(s, PASSWD, GROUP);
        assert_eq!(
            r("ann"),
            Ok(Ids {
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 29, 50]
            })
        );
        assert_eq!(r("www:staff").unwrap().gid, 50);
        assert_eq!(r("www:staff").unwrap().groups, vec![50, 29]);
        // A number need not be listed; listed, it is that user.
        assert_eq!(
            r("4242").unwrap(),
            Ids {
                uid: 4242,
                gid: 4242,
                groups: vec![4242]
            }
        );
        assert_eq!(r("4242:7").unwrap().gid, 7);
        assert_eq!(r("33").unwrap().groups, vec![33, 29]);
        assert!(r("nobody").unwrap_err().contains("no user \"nobody\""));
        assert!(r("ann:wheel").unwrap_err().contains("no group \"wheel\""));
        assert!(r(":1").is_err() && r("ann:").is_err());
        // Without the files: numbers only.
        assert_eq!(resolve("5:6", "", "").unwrap().groups, vec![6]);
        assert!(resolve("ann", "", "").is_err());
    }
}
