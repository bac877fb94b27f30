//! Context rules: values that have no fixed shape and are found by the words around them —
//! passwords and secrets announced in prose, command-line password flags, cookie headers — and
//! PII announced the same way (birth dates, passport, routing and tax numbers, addresses).
//!
//! Why shape checks after the words: the word after "password" or "token" is usually an
//! ordinary word ("password reset", "token limit"), so every rule here validates its value
//! (`validate::password_like`, `validate::prose_secret`, checksums) before it masks anything.

use super::secrets::{Check, Spec, LEAD};
use super::Detector;
use crate::mask::validate;

/// Value forms after a keyword: "double", 'single', `backtick`, (parenthesised), or bare.
/// A bare value does not end in sentence punctuation (`.`, `,`, `:`, `?`).
const VALUE: &str = r#"(?:\\?"([^"\\\r\n]{4,80~})\\?"|'([^'\r\n]{4,80~})'|`([^`\r\n]{4,80~})`|\(([^()\s]{4,80~})\)|\[([^\[\]\s]{4,80~})\]|([^\s"'`()\[\]<>,;\\]{3,79~}[^\s"'`()\[\]<>,;.:?\\]))"#;

/// Connectors between a keyword and its value in prose.
const CONNECT: &str = r"(?:[ \t]*(?:is|was|are|were|reads|now|set[ \t]+to|changed[ \t]+to|reset[ \t]+to|[:=]|->|=>))*";

/// A value that must hold a digit, or two lower-to-upper case changes (`kqVfPxTb…`), so words
/// skipped before it ("token for the staging cluster") are never taken for it.
const RANDOM: &str = r"[A-Za-z0-9_\-+/=.~]*(?:[0-9]|[a-z][A-Z][A-Za-z_\-+/=.~]*[a-z][A-Z])(?:[A-Za-z0-9_\-+/=.~]*[A-Za-z0-9_\-+/=~])?";

fn date() -> String {
    let month = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?";
    format!(
        r"(?:[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|[0-9]{{1,2}}[/.\-][0-9]{{1,2}}[/.\-](?:[0-9]{{4}}|[0-9]{{2}})|[0-9]{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{month},?[ \t]+[0-9]{{4}}|{month}[ \t]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ \t]+[0-9]{{4}})"
    )
}

fn digits_valid(f: fn(&[u8]) -> bool) -> Check {
    Check::Valid(f)
}

pub fn specs() -> Vec<Spec> {
    use Detector as D;
    let password_words = r"(?:password|passwd|passphrase|passcode|pwd|pw)s?";
    let secret_words = r"(?:secret(?:[ \t_\-]?(?:access[ \t_\-]?)?key)?|client[ \t_\-]?secret|app[ \t_\-]?secret|(?:api|access|auth|signing|encryption|private|master|license|service|deploy)[ \t_\-]?keys?|apikeys?|(?:api|access|auth|refresh|session|bearer|oauth|personal[ \t]access|id|github|slack|bot)?[ \t_\-]?tokens?|credentials?|passkey)";
    let street = r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Close|Crescent|Gardens|Grove|Row|Mews)";
    let uk_postcode = r"[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}";
    vec![
        // Passwords in prose: "with password Maple!River58", "the password is `x`", "pwd (y)".
        (D::PasswordInText, &["passw", "passphrase", "passcode", "pwd", "pw"],
            format!(r"(?i)(?-u:\b){password_words}(?-u:\b){CONNECT}[ \t]+{VALUE}"),
            Check::Valid(validate::password_like), false),
        // "the password for the admin account is X", "password for root: X".
        (D::PasswordInText, &["passw", "passphrase", "passcode", "pwd", "pw"],
            format!(r"(?i)(?-u:\b){password_words}[ \t]+(?:for|of|on|to)(?:[ \t]+(?-u:[A-Za-z0-9_.@\-]){{1,40}}){{1,4}}?[ \t]*(?:is|was|:|=)[ \t]*{VALUE}"),
            Check::Valid(validate::password_like), false),
        // `.env`-style `DB_PASS=...`, `pass: ...` (the `password` spellings are `password_assignment`'s).
        (D::PasswordAssignment, &["pass"],
            r#"(?i)(?:^|[^a-z])pass(?:code)?\\?["']?[ \t]*(?::=|=>|[:=])[ \t]*(?:\\?"([^"\\\r\n]{1,256~})\\?"|'([^'\r\n]{1,256~})'|([^\s"',;&<>\\]{1,256~}))"#.into(),
            Check::Valid(validate::flag_value), false),
        // Command lines.
        (D::PasswordFlag, &["mysql", "mariadb"],
            r#"(?-u:\b)(?:mysql|mysqldump|mysqladmin|mysqlimport|mysqlsh|mariadb|mariadb-dump)(?-u:\b)[^\n|;&]*?[ \t]-p(?:"([^"\r\n]+)"|'([^'\r\n]+)'|([^\s"']+))"#.into(),
            Check::Valid(validate::flag_value), false),
        (D::PasswordFlag, &["--pass", "-pass", "-storepass", "-srcstorepass", "-deststorepass", "-keypass", "--db-password", "-password"],
            r#"(?i)(?:^|[\s"'])--?(?:password|passwd|pass|db-password|admin-password|root-password|storepass|keypass|srcstorepass|deststorepass)(?:[ \t]+|=)(?:"([^"\r\n]+)"|'([^'\r\n]+)'|([^\s"'`]+))"#.into(),
            Check::Valid(validate::flag_value), false),
        (D::PasswordFlag, &["sshpass", "docker login", "redis-cli"],
            r#"(?:sshpass[ \t]+-p|docker[ \t]+login[^\n|;&]*?[ \t]-p|redis-cli[^\n|;&]*?[ \t]-a)[ \t]*(?:"([^"\r\n]+)"|'([^'\r\n]+)'|([^\s"']+))"#.into(),
            Check::Valid(validate::flag_value), false),
        (D::PasswordFlag, &["-u ", "-u\t", "-u=", "--user"],
            r#"(?:^|[ \t])(?:-u|--user)[ \t=]+["']?[^\s:"'@/]+:([^\s"'@]+)"#.into(),
            Check::Valid(validate::flag_value), false),
        (D::PasswordFlag, &["--token", "--api-key", "--apikey", "--secret", "--client-secret", "--auth-token", "--access-token", "--key"],
            r#"(?i)(?:^|[\s"'])--(?:token|api-key|apikey|secret|client-secret|auth-token|access-token|key|secret-key|access-key)(?:[ \t]+|=)["']?((?-u:[A-Za-z0-9_\-+/=.~:]){12,512~})"#.into(),
            Check::Valid(validate::prose_secret), false),
        // Secrets, keys and tokens in prose, up to four words after the keyword.
        (D::SecretInText, &["secret", "key", "token", "credential", "passkey"],
            format!(r#"(?i)(?-u:\b){secret_words}(?-u:\b){LEAD}(?:[ \t]+(?-u:[A-Za-z]){{1,14}}){{0,4}}?(?:[ \t]*(?:is|was|are|of|:|=|->|=>))?[ \t]*["'(`\[<]?[ \t]*(?-i:({RANDOM}))"#),
            Check::Valid(validate::prose_secret), true),
        (D::CookieHeader, &["cookie"],
            r#"(?i)(?-u:\b)(?:set-)?cookie["']?[ \t]*:[ \t]*([^\r\n"'\\]{4,4096~})"#.into(),
            Check::None, false),
        // PII announced by its label.
        (D::DateOfBirth, &["dob", "d.o.b", "d.ob", "do.b", "birth", "born", "geb", "naissance", "nacimiento"],
            format!(r#"(?i)(?-u:\b)(?:d\.?o\.?b\.?|date[ _\-]of[ _\-]birth|birth[ _\-]?date|birthday|born(?:[ \t]+on)?|geb\.|geboren(?:[ \t]+am)?|geburtsdatum|date[ \t]de[ \t]naissance|fecha[ \t]de[ \t]nacimiento)["']?[ \t]*(?:[:=]|is|was)?[ \t]*["']?({})"#, date()),
            Check::None, false),
        (D::PostalAddress, &[" street", " st ", " st.", " st,", " ave", " road", " rd ", " rd.", " rd,", " blvd", " boulevard", " lane", " ln ", " ln.", " ln,", " drive", " dr ", " dr.", " dr,", " court", " ct ", " ct.", " ct,", " way ", " way,", " way.", " place", " pl ", " pl.", " pl,", " terrace", " parkway", " pkwy", " circle", " cir ", " highway", " hwy", " square", " sq ", " close", " crescent", " gardens", " grove", " row ", " row,", " row.", " mews"],
            format!(r"(?-u:\b)[0-9]{{1,6}}[A-Za-z]?(?:[ \t]+[NSEW]\.?)?(?:[ \t]+[A-Z][A-Za-z'\-]+\.?){{1,4}}[ \t]+{street}\.?(?-u:\b)(?:[ \t]+[NS][EW](?-u:\b))?(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?[ \t]*#?[A-Za-z0-9\-]+)?(?:,[ \t]*[A-Z][a-z]+(?:[ \t]+[A-Z][a-z]+){{0,2}})?(?:,[ \t]*[A-Z]{{2}}[ \t]+[0-9]{{5}}(?:-[0-9]{{4}})?|,?[ \t]+{uk_postcode}(?-u:\b))?"),
            Check::None, false),
        (D::PostalAddress, &["straße", "strasse", "str.", "weg ", "platz", "allee", "gasse"],
            r"[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|platz|allee|gasse)[ \t]+[0-9]{1,4}[a-z]?(?:,[ \t]*(?:D-)?[0-9]{5}[ \t]+[A-ZÄÖÜ][a-zäöüß]+)?".into(),
            Check::None, false),
        (D::PostalAddress, &["postcode", "post code", "postal code", "zip", "plz"],
            format!(r"(?i)(?-u:\b)(?:post[ \t]?code|postal[ \t]code|zip(?:[ \t]?code)?|plz)[ \t]*[:=]?[ \t]*(?-i:({uk_postcode}|[0-9]{{5}}(?:-[0-9]{{4}})?))(?-u:\b)"),
            Check::None, false),
        (D::PassportNumber, &["passport", "reisepass", "pasaporte", "passeport"],
            r"(?i)(?-u:\b)(?:passport|reisepass|pasaporte|passeport)(?:[ \t]+(?:no\.?|number|num\.?|nr\.?|#|id))?[ \t]*[:#=]?[ \t]*(?:is[ \t]+)?(?-i:([A-Z0-9]{6,9}))(?-u:\b)".into(),
            Check::Valid(validate::passport_like), false),
        (D::PassportNumber, &["<<"],
            r"(?:P[A-Z<][A-Z<]{3}[A-Z<]{39}[ \t]*\r?\n?[ \t]*)?[A-Z0-9<]{9}[0-9][A-Z<]{3}[0-9]{6}[0-9][MFX<][0-9]{6}[0-9][A-Z0-9<]{14}[0-9<][0-9]".into(),
            Check::Valid(validate::mrz), false),
        (D::UsRoutingNumber, &["routing", "aba ", "aba:", "aba#", "aba=", "aba no", "rtn ", "rtn:", "rtn#", "transit"],
            r"(?i)(?-u:\b)(?:routing|aba|rtn|transit)(?:[ \t]+(?:no\.?|number|num\.?|#|code))?[ \t]*[:#=]?[ \t]*(?:is[ \t]+)?([0-9]{9})(?-u:\b)".into(),
            digits_valid(validate::aba_routing), false),
        (D::DeTaxId, &["steuer", "idnr", "tax id", "tax-id", "taxid", "tin", "identifikationsnummer"],
            r"(?i)(?-u:\b)(?:steuer[ \-]?(?:id|identifikationsnummer|nummer|-?idnr)|idnr|tax[ \-]?id|tin|identifikationsnummer)(?P<gap>[^0-9\n]{0,16~})([0-9]{2}[ ]?[0-9]{3}[ ]?[0-9]{3}[ ]?[0-9]{3})(?-u:\b)".into(),
            Check::Valid(|v| validate::de_tax_id(&validate::digits_of(v))), false),
        (D::Aadhaar, &["aadhaar", "aadhar", "uidai"],
            r"(?i)(?-u:\b)(?:aadhaa?r|uidai)(?P<gap>[^0-9\n]{0,16~})([0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{4})(?-u:\b)".into(),
            Check::Valid(|v| validate::aadhaar(&validate::digits_of(v))), false),
        (D::NhsNumber, &["nhs"],
            r"(?i)(?-u:\b)nhs(?:[ \t]+(?:no\.?|number|num\.?|#))?[^0-9\n]{0,8}([0-9]{3}[ \-]?[0-9]{3}[ \-]?[0-9]{4})(?-u:\b)".into(),
            Check::Valid(|v| validate::nhs(&validate::digits_of(v))), false),
    ]
}
