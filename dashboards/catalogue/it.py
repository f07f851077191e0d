"""Messages of the IT pages."""

MESSAGES: dict[str, tuple[str, str]] = {
    "it.title": ("Beheer", "IT tools"),
    "it.nav.label": ("Onderdelen van beheer", "IT tools sections"),
    "it.nav.overview": ("Beleid en lijsten", "Policy and lists"),
    "it.nav.explain": ("Waarom geblokkeerd?", "Why blocked?"),
    "it.nav.dryrun": ("Proefrun van een lijstwijziging", "Dry run of a list change"),
    "it.nav.overblocking": ("Overblokkering", "Over-blocking"),
    "it.yes": ("ja", "yes"),
    "it.no": ("nee", "no"),
    "it.none": ("geen", "none"),
    # policy and lists in force
    "it.overview.title": ("Beleid en lijsten die nu gelden", "Policy and lists in force"),
    "it.overview.intro": ("Wat dit dashboard gebruikt om uit te leggen en proef te draaien. De proxy is een apart "
                          "proces en laadt gewijzigde bestanden zelf opnieuw; met ‘Opnieuw inlezen’ volgt deze "
                          "pagina.",
                          "What this dashboard uses to explain and to dry-run. The proxy is a separate process "
                          "and reloads changed files itself; ‘Reload’ makes this page follow."),
    "it.policy.heading": ("Beleid", "Policy"),
    "it.policy.caption": ("Het beleidsbestand en zijn belangrijkste instellingen",
                          "The policy file and its main settings"),
    "it.policy.setting": ("Instelling", "Setting"),
    "it.policy.value": ("Waarde", "Value"),
    "it.policy.file": ("Beleidsbestand", "Policy file"),
    "it.policy.name": ("School", "School"),
    "it.policy.school_type": ("Soort school", "School type"),
    "it.policy.type.primary": ("basisschool", "primary school"),
    "it.policy.type.secondary": ("voortgezet onderwijs", "secondary school"),
    "it.policy.timezone": ("Tijdzone", "Time zone"),
    "it.policy.threshold": ("Drempel zoekwoorden", "Search-word threshold"),
    "it.policy.search_categories": ("Zoekwoorden die blokkeren", "Search words that block"),
    "it.policy.alert_categories": ("Zoekwoorden die zorg waarschuwen", "Search words that alert care staff"),
    "it.policy.never_open": ("Nooit te openen door een leerkracht", "Never opened by a teacher"),
    "it.policy.safesearch": ("SafeSearch afgedwongen", "SafeSearch enforced"),
    "it.policy.identity": ("Herkenning leerlingen", "How pupils are identified"),
    "it.policy.identity.address": ("apparaat of subnet (rooster)", "device or subnet (roster)"),
    "it.policy.identity.proxyauth": ("inlog per leerling op de proxy", "a proxy login per pupil"),
    "it.policy.passthrough": ("Niet ontsleutelen wat geen regel nodig heeft", "Leave undecrypted what no rule needs"),
    "it.policy.inspect": ("Ontsleuteld om te lezen wat er verstuurd wordt", "Decrypted to read what is sent"),
    "it.policy.refuse": ("Geweigerd bij het opzetten van de verbinding", "Refused at the handshake"),
    "it.policy.allow_hosts": ("Schoolsites in het beleid (altijd open)", "School sites in the policy (always open)"),
    "it.periods.heading": ("Periodes", "Periods"),
    "it.periods.caption": ("Wat er per periode dicht is", "What is closed in each period"),
    "it.periods.period": ("Periode", "Period"),
    "it.periods.internet": ("Internet", "Internet"),
    "it.periods.internet_open": ("open", "open"),
    "it.periods.internet_closed": ("dicht, behalve schoolsites", "closed except school sites"),
    "it.periods.search_words": ("Zoekwoorden geblokkeerd", "Search words blocked"),
    "it.periods.closed": ("Gesloten categorieën", "Closed categories"),
    "it.period.lesson": ("les", "lesson"),
    "it.period.break": ("pauze", "break"),
    "it.period.outside": ("buiten schooltijd", "outside school hours"),
    "it.period.holiday": ("vakantie", "holiday"),
    "it.timetables.caption": ("Roosters: schooldagen en pauzes", "Timetables: school days and breaks"),
    "it.timetables.name": ("Rooster", "Timetable"),
    "it.timetables.days": ("Schooldagen", "School days"),
    "it.timetables.breaks": ("Pauzes", "Breaks"),
    "it.holidays.caption": ("Vakanties", "Holidays"),
    "it.holidays.name": ("Vakantie", "Holiday"),
    "it.holidays.dates": ("Van en tot en met", "From and to"),
    "it.retention.heading": ("Bewaartermijnen", "Retention"),
    "it.retention.text": ("Gebeurtenissen en meldingen: {events} dagen. Auditlog: {audit} dagen. Zoekopdrachten "
                          "en websites voor de proefrun: {seen} dagen, zonder leerling of groep.",
                          "Events and alerts: {events} days. Audit log: {audit} days. Searches and websites for "
                          "the dry run: {seen} days, without pupil or group."),
    "it.lists.heading": ("Lijsten", "Lists"),
    "it.lists.caption": ("Geladen lijstbestanden met het aantal regels dat meetelt",
                         "Loaded list files with the number of entries in force"),
    "it.lists.file": ("Bestand", "File"),
    "it.lists.kind": ("Soort", "Kind"),
    "it.lists.kind.terms": ("woorden", "words"),
    "it.lists.kind.hosts": ("websites", "websites"),
    "it.lists.category": ("Categorie", "Category"),
    "it.lists.entries": ("Regels", "Entries"),
    "it.lists.total": ("{files} bestanden, {terms} woordregels, {hosts} domeinen.",
                       "{files} files, {terms} word entries, {hosts} domains."),
    "it.errors.heading": ("Fouten bij het laden", "Load errors"),
    "it.errors.none": ("Geen fouten: elke regel is geladen.", "No errors: every line was loaded."),
    "it.errors.intro": ("Deze regels zijn overgeslagen (bestand:regel: reden). Herstel ze in het bestand; "
                        "controleer met klaswacht check lists MAP.",
                        "These lines were skipped (file:line: reason). Fix them in the file; check with "
                        "klaswacht check lists DIR."),
    "it.reload.heading": ("Opnieuw inlezen", "Reload"),
    "it.reload.intro": ("Leest beleid en lijsten opnieuw van schijf als ze veranderd zijn, zoals de proxy dat "
                        "zelf binnen enkele seconden doet.",
                        "Reads policy and lists from disk again if they changed, as the proxy does by itself "
                        "within seconds."),
    "it.reload.submit": ("Opnieuw inlezen", "Reload"),
    "it.reload.unchanged": ("Niets veranderd sinds de vorige keer inlezen.", "Nothing changed since the last load."),
    "it.reload.done": ("Opnieuw ingelezen: {files} lijstbestanden.", "Reloaded: {files} list files."),
    "it.reload.refused": ("Niet overgenomen: de nieuwe versie heeft fouten, de vorige blijft gelden (de proxy doet "
                          "hetzelfde).",
                          "Not taken over: the new version has errors, the previous one stays in force (the proxy "
                          "does the same)."),
    "it.reload.refused_heading": ("Fouten in de geweigerde versie", "Errors in the refused version"),
    "it.links.heading": ("Metingen", "Metrics"),
    "it.links.metrics": ("Prometheus-metingen van de proxy", "The proxy's Prometheus metrics"),
    "it.links.no_metrics": ("Het adres van de metingen is niet ingesteld (klaswacht run geeft het mee).",
                            "The metrics address is not set (klaswacht run passes it)."),
    "it.links.grafana": ("Grafana-dashboard: uitleg bij importeren en provisioning", "Grafana dashboard: how to "
                         "import and provision it"),
    "it.links.grafana_json": ("Grafana-dashboard (JSON) downloaden", "Download the Grafana dashboard (JSON)"),
    # why blocked?
    "it.explain.title": ("Waarom geblokkeerd?", "Why blocked?"),
    "it.explain.intro": ("Typ een zoekopdracht, een websitenaam of een hele URL. Je ziet welk lijstbestand, welke "
                         "regel en welke regel van het beleid beslist, of waarom niets dat doet.",
                         "Type a search, a host name or a whole URL. You see which list file, line and entry, "
                         "and which rule of the policy decides, or why nothing does."),
    "it.explain.query": ("Zoekopdracht, website of URL", "Search, website or URL"),
    "it.explain.period": ("Periode", "Period"),
    "it.explain.submit": ("Leg uit", "Explain"),
    "it.explain.result": ("Uitleg", "Explanation"),
    # dry run
    "it.dryrun.title": ("Proefrun van een lijstwijziging", "Dry run of a list change"),
    "it.dryrun.intro": ("Probeer een wijziging van een lijst uit op de zoekopdrachten en websites van de laatste "
                        "{days} dagen (zonder leerling of groep bewaard), alsof het les is. Er wordt niets "
                        "opgeslagen.",
                        "Try a change of a list on the searches and websites of the last {days} days (kept "
                        "without pupil or group), as in a lesson. Nothing is saved."),
    "it.dryrun.file": ("Lijstbestand", "List file"),
    "it.dryrun.add": ("Regels toevoegen (één per regel)", "Lines to add (one a line)"),
    "it.dryrun.remove": ("Regels verwijderen (precies zoals in het bestand)", "Lines to remove (exactly as in the "
                         "file)"),
    "it.dryrun.limits": ("Hoogstens {lines} regels van {chars} tekens per veld.",
                         "At most {lines} lines of {chars} characters per field."),
    "it.dryrun.submit": ("Proefrun", "Dry run"),
    "it.dryrun.result": ("Uitkomst", "Outcome"),
    "it.dryrun.tried": ("Geprobeerd: {searches} verschillende zoekopdrachten en {hosts} websites.",
                        "Tried: {searches} different searches and {hosts} websites."),
    "it.dryrun.blocked": ("Zou nieuw geblokkeerd worden", "Would newly be blocked"),
    "it.dryrun.released": ("Zou niet meer geblokkeerd worden", "Would be released"),
    "it.dryrun.changed": ("Ander verschil (melding, categorie)", "Another difference (alert, category)"),
    "it.dryrun.none": ("Geen verschil voor de zoekopdrachten en websites van de laatste dagen.",
                       "No difference for the searches and websites of the last days."),
    "it.dryrun.more": ("En nog {n} die minder vaak gezien zijn (niet getoond).",
                       "And {n} more that were seen less often (not shown)."),
    "it.dryrun.what": ("Zoekopdracht of website", "Search or website"),
    "it.dryrun.kind.search": ("zoekopdracht", "search"),
    "it.dryrun.kind.host": ("website", "website"),
    "it.dryrun.count": ("Keer gezien", "Times seen"),
    "it.dryrun.before": ("Nu", "Now"),
    "it.dryrun.after": ("Met de wijziging", "With the change"),
    "it.dryrun.errors": ("Fouten in de toegevoegde regels", "Errors in the added lines"),
    "it.dryrun.errors_intro": ("Deze regels zou de lijstlader overslaan; de proxy weigert een versie met fouten "
                               "bij het opnieuw laden.",
                               "The list loader would skip these lines; the proxy refuses a version with errors "
                               "when it reloads."),
    "it.dryrun.not_found": ("Niet in het bestand (niets verwijderd): {lines}", "Not in the file (nothing removed): "
                            "{lines}"),
    "it.dryrun.apply_heading": ("De wijziging doorvoeren", "Applying the change"),
    "it.dryrun.apply": ("Dit was een proefrun: er is niets veranderd. Om de wijziging door te voeren, pas je {file} "
                        "aan, of beter: zet een kopie als {relative} in de lokale lijstmap (de map die klaswacht run "
                        "met --lists krijgt; een bestand met hetzelfde pad vervangt het meegeleverde) en pas die "
                        "aan. Controleer met klaswacht check lists MAP. De proxy laadt een gewijzigd bestand binnen "
                        "enkele seconden zelf opnieuw; daarna toont ‘Opnieuw inlezen’ op Beleid en lijsten het hier.",
                        "This was a dry run: nothing changed. To apply the change, edit {file}, or better: put a "
                        "copy as {relative} in the local list folder (the folder klaswacht run gets with --lists; a "
                        "file with the same path replaces the shipped one) and edit that. Check with klaswacht "
                        "check lists DIR. The proxy reloads a changed file by itself within seconds; after that "
                        "‘Reload’ on Policy and lists shows it here."),
    "it.dryrun.too_many": ("Te veel regels: hoogstens {limit} per veld.", "Too many lines: at most {limit} a field."),
    "it.dryrun.too_long": ("Een regel is langer dan {limit} tekens: {line}", "A line is longer than {limit} "
                           "characters: {line}"),
    "it.dryrun.empty": ("Geef regels om toe te voegen of te verwijderen.", "Give lines to add or to remove."),
    "it.dryrun.no_file": ("Er is geen lijstbestand {file}.", "There is no list file {file}."),
    # over-blocking
    "it.overblocking.title": ("Overblokkering per lijstregel", "Over-blocking per list entry"),
    "it.overblocking.intro": ("Over de laatste {days} dagen: hoe vaak een regel blokkeerde, hoe vaak leerlingen "
                              "vroegen om open te zetten, en hoe vaak een leerkracht dat toestond of weigerde. "
                              "Veel toegestane verzoeken wijzen op een regel die te veel blokkeert.",
                              "Over the last {days} days: how often an entry blocked, how often pupils asked to "
                              "open it, and how often a teacher granted or refused that. Many granted requests "
                              "point at an entry that blocks too much."),
    "it.overblocking.caption": ("Per lijstregel, meest toegestaan bovenaan", "Per list entry, most granted first"),
    "it.overblocking.entry": ("Woorden", "Words"),
    "it.overblocking.rule": ("Regel", "Rule"),
    "it.overblocking.blocks": ("Geblokkeerd", "Blocked"),
    "it.overblocking.asked": ("Gevraagd", "Asked"),
    "it.overblocking.granted": ("Toegestaan", "Granted"),
    "it.overblocking.refused": ("Geweigerd", "Refused"),
    "it.overblocking.total": ("Alle regels samen", "All entries together"),
    "it.overblocking.more": ("En nog {n} regels die minder vaak blokkeerden (niet getoond).",
                             "And {n} more entries that blocked less often (not shown)."),
    "it.overblocking.nothing": ("Niets geblokkeerd of gevraagd in deze periode.",
                                "Nothing blocked or asked in this period."),
}
