"""The pages of the setup host (proxy/devicesetup.py): the CA landing page and its 404, Dutch first, English below.

For IT staff, teachers and older pupils who set a device up: what the certificate is for, its fingerprint to
compare, the downloads, and short steps per platform. The steps name the menus as the vendors do (in English
where the consoles are in English); they are a guide, the vendors' own documentation is the reference.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.devicesetup import CaCertificate

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5;
color:#1a1a1a;background:#fffdf7}h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:1.6rem}
h3{font-size:1.05rem;margin-bottom:.2rem}section.en{border-top:2px solid #ddd;margin-top:2.5rem;color:#333}
code,.fp{font-family:ui-monospace,monospace;font-size:.9rem}.fp{word-break:break-all;background:#f1efe6;
padding:.4rem .6rem;border-radius:.3rem;display:block}a.button{display:inline-block;margin:.2rem .4rem .2rem 0;
padding:.5rem 1rem;border-radius:.5rem;background:#1d4e89;color:#fff;text-decoration:none}
a.button:focus{outline:3px solid #f5a623}
"""


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html>\n<html lang="nl">\n<head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n<main>\n{body}\n</main>\n"
            f"</body>\n</html>\n").encode()


def _fingerprints(ca: CaCertificate | None, lang: str) -> str:
    if ca is None:
        if lang == "nl":
            return ("<p><strong>Het certificaat is nu niet te vinden op de gateway.</strong> Vraag de ICT-beheerder "
                    "om <code>klaswacht doctor</code> te draaien.</p>")
        return ("<p><strong>The certificate cannot be found on the gateway right now.</strong> Ask IT to run "
                "<code>klaswacht doctor</code>.</p>")
    if lang == "nl":
        return f"""<p>Vingerafdruk (SHA-256) van het certificaat:</p>
<p class="fp" id="sha256">{ca.sha256}</p>
<p>Vergelijk die met wat je apparaat of beheerconsole laat zien, teken voor teken (soms met spaties of zonder
dubbele punten). Windows toont de SHA-1-vingerafdruk: <span class="fp">{ca.sha1}</span>
Klopt het niet? Installeer het certificaat dan niet en meld het bij de ICT-beheerder.
Naam: <code>{escape(ca.subject)}</code>, geldig tot {escape(ca.not_after)}.</p>
<p><a class="button" href="/ca.pem" download="klaswacht-ca.pem">klaswacht-ca.pem</a>
<a class="button" href="/ca.crt" download="klaswacht-ca.crt">klaswacht-ca.crt</a>
(hetzelfde certificaat: PEM-tekst en DER-binair; neem het bestand dat je apparaat of console vraagt)</p>"""
    return f"""<p>SHA-256 fingerprint of the certificate:</p>
<p class="fp">{ca.sha256}</p>
<p>Compare it with what your device or management console shows, character by character (sometimes with spaces,
or without colons). Windows shows the SHA-1 thumbprint: <span class="fp">{ca.sha1}</span>
If it does not match, do not install the certificate and tell IT.
Name: <code>{escape(ca.subject)}</code>, valid until {escape(ca.not_after)}.</p>
<p><a class="button" href="/ca.pem" download="klaswacht-ca.pem">klaswacht-ca.pem</a>
<a class="button" href="/ca.crt" download="klaswacht-ca.crt">klaswacht-ca.crt</a>
(the same certificate: PEM text and DER binary; use the file your device or console asks for)</p>"""


def landing_page(ca: CaCertificate | None, base: str) -> bytes:
    """The landing page at `base` (the URL the device used, such as http://klaswacht.school): the CA's
    fingerprints and downloads, how to trust it on each platform, and where the PAC file is."""
    pac = escape(f"{base}/proxy.pac")
    return _page("klaswacht: dit apparaat instellen", f"""<h1>Dit apparaat instellen voor het schoolnetwerk</h1>
<p>Op dit netwerk filtert <strong>klaswacht</strong>, het internetfilter van de school, wat leerlingen op
internet doen, volgens de internetafspraken van de school. Om ook beveiligde websites (https) te kunnen
filteren, moet een apparaat het certificaat van klaswacht vertrouwen. Zonder dat certificaat ziet een
beveiligde website er op het schoolnetwerk uit als een waarschuwing.</p>
<p>Deze pagina is voor de ICT-beheerder, en voor wie zelf een apparaat van school instelt. Installeer het
certificaat alleen op apparaten die op het schoolnetwerk werken: een apparaat dat het vertrouwt, laat
klaswacht op dit netwerk ook beveiligde pagina's lezen.</p>
{_fingerprints(ca, "nl")}

<h2>Chromebooks (beheerd)</h2>
<p>In de Google Admin-console (admin.google.com): <em>Devices → Networks → Certificates</em>. Kies de
organisatie-eenheid van de leerlingen, upload het certificaat en vink bij <em>Certificate authority</em>
<em>Chromebook</em> aan (vertrouwen als certificeringsinstantie). Chromebooks halen het op bij de volgende
synchronisatie. De proxy stel je in dezelfde console in bij het wifi-netwerk (automatische configuratie met de
PAC-URL hieronder).</p>

<h2>Windows</h2>
<p><strong>Intune:</strong> maak een configuratieprofiel <em>Trusted certificate</em> (Windows 10 en later) met
<code>klaswacht-ca.crt</code> (hernoem het naar <code>.cer</code> als Intune daarom vraagt), doelarchief
<em>Computer certificate store - Root</em>, en wijs het toe aan de apparaten van de leerlingen.</p>
<p><strong>Groepsbeleid (GPO):</strong> <em>Computer Configuration → Policies → Windows Settings → Security
Settings → Public Key Policies → Trusted Root Certification Authorities</em>, rechtsklik <em>Import</em>, kies
<code>klaswacht-ca.crt</code>. Computers nemen het over bij de volgende beleidsvernieuwing
(<code>gpupdate /force</code>).</p>
<p>Eén losse computer, als beheerder: <code>certutil -addstore -f Root klaswacht-ca.crt</code>.</p>

<h2>iPads</h2>
<p>Met Apple Configurator of je MDM (Jamf, Intune, Mosyle, …): een profiel met een
<em>Certificaat</em>-payload met <code>klaswacht-ca.crt</code>. Zet daarna op de iPad volledig vertrouwen aan:
<em>Instellingen → Algemeen → Info → Certificaatvertrouwensinstellingen</em>, schakelaar bij klaswacht aan.
Kwam het profiel via MDM, kijk daar dan ook even of de schakelaar aan staat. Op één iPad met de hand: open
deze pagina in Safari, tik op <code>klaswacht-ca.crt</code>, installeer het profiel bij <em>Instellingen →
Profiel gedownload</em> en zet dan het vertrouwen aan zoals hierboven.</p>

<h2>macOS</h2>
<p>Open <code>klaswacht-ca.pem</code> met <em>Sleutelhangertoegang</em> en zet het in de sleutelhanger
<em>Systeem</em>. Dubbelklik het certificaat, open <em>Vertrouw</em> en kies bij <em>Bij gebruik van dit
certificaat</em>: <em>Altijd vertrouwen</em>. Of in Terminal:
<code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain klaswacht-ca.pem</code>.
Voor veel Macs: een MDM-profiel met een certificaat-payload.</p>

<h2>Firefox</h2>
<p>Firefox heeft een eigen certificatenlijst. Met een beleidsbestand <code>policies.json</code> (of de
Firefox-sjablonen voor groepsbeleid): <code>"Certificates": {{"ImportEnterpriseRoots": true}}</code> laat
Firefox op Windows en macOS de certificaten van het systeem vertrouwen (na de stappen hierboven), of
<code>"Certificates": {{"Install": ["klaswacht-ca.pem"]}}</code> installeert dit certificaat zelf (met het pad
naar het bestand op het apparaat).</p>

<h2>Proxy-instelling</h2>
<p>Automatische proxyconfiguratie (PAC): <code>{pac}</code>. Die stuurt al het verkeer door het filter,
behalve het schoolnetwerk zelf en deze pagina.</p>

<section class="en" lang="en">
<h1>Setting this device up for the school network</h1>
<p>On this network <strong>klaswacht</strong>, the school's internet filter, filters what pupils do online,
following the school's internet rules. To filter secure websites (https) too, a device must trust klaswacht's
certificate. Without it, a secure website shows a warning on the school network.</p>
<p>This page is for IT staff, and for anyone setting up a school device. Only install the certificate on
devices that work on the school network: a device that trusts it lets klaswacht read secure pages on this
network too.</p>
{_fingerprints(ca, "en")}

<h2>Chromebooks (managed)</h2>
<p>In the Google Admin console (admin.google.com): <em>Devices → Networks → Certificates</em>. Pick the pupils'
organisational unit, upload the certificate and under <em>Certificate authority</em> tick <em>Chromebook</em>
(trust it as a certificate authority). Chromebooks pick it up at their next sync. Set the proxy in the same
console on the Wi-Fi network (automatic configuration with the PAC URL below).</p>

<h2>Windows</h2>
<p><strong>Intune:</strong> a <em>Trusted certificate</em> configuration profile (Windows 10 and later) with
<code>klaswacht-ca.crt</code> (rename it to <code>.cer</code> if Intune asks for that), destination store
<em>Computer certificate store - Root</em>, assigned to the pupils' devices.</p>
<p><strong>Group Policy (GPO):</strong> <em>Computer Configuration → Policies → Windows Settings → Security
Settings → Public Key Policies → Trusted Root Certification Authorities</em>, right-click <em>Import</em>, pick
<code>klaswacht-ca.crt</code>. Computers take it at the next policy refresh (<code>gpupdate /force</code>).</p>
<p>One computer, as an administrator: <code>certutil -addstore -f Root klaswacht-ca.crt</code>.</p>

<h2>iPads</h2>
<p>With Apple Configurator or your MDM (Jamf, Intune, Mosyle, …): a profile with a <em>Certificate</em>
payload holding <code>klaswacht-ca.crt</code>. Then turn on full trust on the iPad: <em>Settings → General →
About → Certificate Trust Settings</em>, switch klaswacht on. If the profile came through MDM, check that the
switch is on there too. On one iPad by hand: open this page in Safari, tap <code>klaswacht-ca.crt</code>,
install the profile under <em>Settings → Profile Downloaded</em>, then turn trust on as above.</p>

<h2>macOS</h2>
<p>Open <code>klaswacht-ca.pem</code> with <em>Keychain Access</em> and add it to the <em>System</em> keychain.
Double-click the certificate, open <em>Trust</em> and set <em>When using this certificate</em> to
<em>Always Trust</em>. Or in Terminal:
<code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain klaswacht-ca.pem</code>.
For many Macs: an MDM profile with a certificate payload.</p>

<h2>Firefox</h2>
<p>Firefox has its own certificate store. With a <code>policies.json</code> policy file (or Firefox's Group
Policy templates): <code>"Certificates": {{"ImportEnterpriseRoots": true}}</code> makes Firefox on Windows and
macOS trust the system's certificates (after the steps above), or
<code>"Certificates": {{"Install": ["klaswacht-ca.pem"]}}</code> installs this certificate itself (with the path
to the file on the device).</p>

<h2>Proxy setting</h2>
<p>Automatic proxy configuration (PAC): <code>{pac}</code>. It sends all traffic through the filter, except the
school network itself and this page.</p>
</section>""")


def not_found_page(base: str) -> bytes:
    """A path the setup host does not have: where the landing page is."""
    home = escape(f"{base}/")
    return _page("Niet gevonden", f"""<h1>Deze pagina bestaat niet</h1>
<p>Het certificaat van het schoolfilter en hoe je een apparaat instelt, staan op <a href="/">{home}</a>.</p>
<p class="en" lang="en"><strong>This page does not exist.</strong> The school filter's certificate and how to
set a device up are at <a href="/">{home}</a>.</p>""")
