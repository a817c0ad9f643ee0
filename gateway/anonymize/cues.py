"""What tells a reader that capitalised words are a person's name, and what tells them they
are not: the cue words before a name (titles, labels, roles, address words, closings) in English
and Norwegian, the words after one that make it a disease, a test, a product or a place, and the
shape of a name itself. Data and patterns only; names.py decides with them.
"""

from __future__ import annotations

import re

from gateway.anonymize.lexicon import words_of

_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿ"
# A capitalised word (Kari, Anne-Lise, McDonald, O'Brien), not the head of a longer token
# (JavaScript, Claude-3, Baker-cyste), or an initial (J.).
_WORD = rf"(?:Mc|Mac|O['\u2019])?[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*(?![\w-])"
_TOKEN = rf"(?:{_WORD}|[{_UP}]\.(?=[ \t]+[{_UP}]))"
_PARTICLE = r"(?:van|von|de|der|den|da|di|du|la|le|bin|ibn|al|el|af|ter)"
# Words of one name are joined by spaces or tabs only: a rule never runs across a line break.
_SEQUENCE = rf"{_TOKEN}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_TOKEN}){{0,3}}"
_LOWER_PAIR = rf"[{_LOW}]+[ \t]+[{_LOW}]+(?:-[{_LOW}]+)?"

_TITLES = r"Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Fru|Frk|Herr|Sir|dr|fru|herr|frk"
_LABELS = (
    r"pasient|patient|pasientnavn|patient name|navn|name|full name|fullt navn|fornavn|etternavn"
    r"|first name|last name|surname|behandler|lege|fastlege|kiropraktor|fysioterapeut"
    r"|terapeut|sykepleier|doctor|physician|gp|nurse|therapist|kunde|customer|client|klient"
    r"|kontaktperson|kontakt|contact|contact person|pårørende|next of kin|signert|signed|signature"
    r"|signatur|sign|from|fra|to|til|cc|attn|att|author|forfatter|henvist av|referred by"
    r"|ansvarlig|responsible|requested by|bestilt av|user|bruker|employee|ansatt|owner|eier"
)
_INTRODUCTIONS = (
    r"my name is|my name's|i am called|call me|jeg heter|mitt navn er|navnet mitt er"
    r"|signed by|signert av|skrevet av|written by|approved by|godkjent av"
    r"|reviewed by|vurdert av|henvist av|referred by|sendt av|sent by|på vegne av|on behalf of"
)
_ROLES = (
    r"patient|pasient|pasienten|pasientene|customer|kunde|kunden|client|klient|klienten"
    r"|lege|legen|fastlege|fastlegen|doctor|nurse|sykepleier|sykepleieren|therapist|terapeut"
    r"|fysioterapeut|fysioterapeuten|kiropraktor|kiropraktoren|behandler|behandleren"
    r"|colleague|kollega|kollegaen|wife|husband|son|daughter|mother|father|brother|sister"
    r"|partner|kona|kone|mannen|sønnen|datteren|dattera|moren|mora|faren|broren|søsteren"
    r"|samboer|samboeren|kjæresten|named|called|heter|kalt|ved navn|contact|kontaktperson"
)
# Definite Norwegian roles are cues at the start of a sentence too: "Kunden Amir Haddad klager".
_DEFINITE_ROLES = (
    r"pasienten|kunden|klienten|legen|fastlegen|sykepleieren|fysioterapeuten|kiropraktoren"
    r"|behandleren|kollegaen|kona|mannen|sønnen|datteren|dattera|moren|mora|faren|broren"
    r"|søsteren|samboeren|kjæresten"
)
# Talking to, meeting or writing to someone: "snakket med Amir Haddad", "spoke with Nkechi Eze".
_INTERACTIONS = (
    r"snakket med|snakka med|pratet med|prata med|møtte|ringte til|ringt til|sendt til|sendte til"
    r"|spoke with|spoke to|talked to|talked with|met with|emailed|e-mailed|wrote to"
    r"|forward(?:ed)? (?:this |it )?to|examined by|treated by|seen by|sett av|undersøkt av"
    r"|behandlet av|time med|timen med|appointment with|avtale med"
)
_ADDRESSES = (
    r"hi|hello|hey|dear|kjære|hei|hallo|heisann|good morning|god morgen|thanks|thank you"
    r"|takk|mvh|hilsen|vennlig hilsen|med vennlig hilsen|beste hilsen|regards|best regards"
    r"|kind regards|warm regards|cheers|sincerely|yours|best wishes"
)
_CLOSINGS = (
    r"mvh\.?|hilsen|vennlig hilsen|med vennlig hilsen|beste hilsen|regards|best regards"
    r"|kind regards|warm regards|best wishes|cheers|sincerely|yours sincerely|yours|thanks"
    r"|thank you|takk|best|--"
)

# How much a cue proves. STRONG: any capitalised words after it are a name ("Pasient: Amir
# Haddad"), unless they are no one in particular ("Patient: Male"). SOFT: the same, unless
# the first word is on not-names.txt ("Hi Claude"). LISTED: only if the name lists know a word
# of it: "I'm Norwegian", "Patient Portal", "Customer Service" are no one.
# SIGNATURE: the line under a closing is STRONG with two words or more ("Best regards,\nAmir
# Haddad"), LISTED with one ("Mvh\nResepsjonen", "Thanks,\nSupport").
STRONG, SOFT, LISTED, SIGNATURE = "strong", "soft", "listed", "signature"
LOWERCASE = "lowercase"  # `pasient per hansen`: see NameFinder._lowercase_name


def _first_words(*alternations: str) -> frozenset[str]:
    """The lowercased first word of every branch: "dr", "pasient", "snakket", "i", "best"."""
    return frozenset(
        re.match(r"[^\W\d_]*", branch).group().lower()  # type: ignore[union-attr]
        for alternation in alternations
        for branch in alternation.split("|")
    ) - {""}


_CUES: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = (
    (_first_words(_TITLES), re.compile(rf"(?<![\w.])(?:{_TITLES})\.?[ \t]+(?=[{_UP}])"), STRONG),
    # `Pasient: Kari`, and the same in JSON or logs: `"pasient": "Kari"`, `name=Kari`.
    (
        _first_words(_LABELS),
        re.compile(rf"(?i:(?<![a-z])(?:{_LABELS}))[\"']?[ \t]*[:=][ \t]*[\"']?(?=[{_UP}])"),
        STRONG,
    ),
    (
        _first_words(_INTRODUCTIONS),
        re.compile(rf"(?i:\b(?:{_INTRODUCTIONS}))[ \t]+(?=[{_UP}])"),
        STRONG,
    ),
    (_first_words(_ROLES), re.compile(rf"\b(?:{_ROLES})[ \t]+(?=[{_UP}])"), SOFT),
    (
        _first_words(_DEFINITE_ROLES, _INTERACTIONS),
        re.compile(rf"(?i:\b(?:{_DEFINITE_ROLES}|{_INTERACTIONS}))[ \t]+(?=[{_UP}])"),
        SOFT,
    ),
    (
        _first_words(_ADDRESSES),
        re.compile(rf"(?i:\b(?:{_ADDRESSES}))[ \t]*,?[ \t]*(?=[{_UP}])"),
        SOFT,
    ),
    (
        _first_words(_ROLES, "i am|i'm|this is|jeg er|dette er"),
        re.compile(rf"(?i:\b(?:{_ROLES}|i am|i'm|this is|jeg er|dette er))[ \t]+(?=[{_UP}])"),
        LISTED,
    ),
    (
        _first_words(_ROLES, _LABELS),
        re.compile(rf"(?i:\b(?:{_ROLES}|{_LABELS}))[ \t]*:?[ \t]+(?={_LOWER_PAIR})"),
        LOWERCASE,
    ),
)


# The cue patterns are long case-insensitive alternations, slow to try at every position:
# each is tried only where a word that can begin it begins.
def _by_first_word(
    cues: tuple[tuple[frozenset[str], re.Pattern[str], str], ...],
) -> dict[str, tuple[tuple[re.Pattern[str], str], ...]]:
    table: dict[str, list[tuple[re.Pattern[str], str]]] = {}
    for words, pattern, strength in cues:
        for word in words:
            table.setdefault(word, []).append((pattern, strength))
    return {word: tuple(entries) for word, entries in table.items()}


CUES_BY_WORD = _by_first_word(_CUES)
# The display name before an address: "Wei Zhang <wei@example.org>".
DISPLAY_NAME_RE = re.compile(rf"(?<![\w@/\\.-])(?={_SEQUENCE}[ \t]*<[^<>\s@]+@)")
SIGNATURE_RE = re.compile(
    rf"^[ \t]*(?i:{_CLOSINGS})[ \t]*[,.!]?[ \t]*\n[ \t]*(?={_SEQUENCE}[ \t]*,?[ \t]*(?:\n|$))",
    re.MULTILINE,
)
WORD_RE = re.compile(r"[^\W\d_]+")
# Where a later mention can begin: a capitalised word, with the marks names carry (O'Brien).
MENTION_WORD_RE = re.compile(rf"(?<![\w-])[{_UP}][\w'\u2019.-]*")
# What every such word holds: a text without it mentions no one (a role, a tool name, a number).
CAPITAL_RE = re.compile(f"[{_UP}]")
# Not inside a path, a domain or an address; after a bare @ it is a mention: "@Jasper".
SEQUENCE_RE = re.compile(rf"(?<![\w/\\.-])(?<!\w@){_SEQUENCE}")
TOKEN_RE = re.compile(_TOKEN)
LOWER_PAIR_RE = re.compile(_LOWER_PAIR)

# What follows a name that makes it a disease, a test, a place or an institution named after
# someone: "Bell's palsy", "Thomas test", "Adams forward bend test", "Wilsons sykdom", "Karl
# Johans gate", "Tesla AS". Checked after every name, cued or not.
EPONYM_AFTER = re.compile(
    r"(?:['\u2019]s|s['\u2019]|['\u2019]|s)?[ \t-]+"
    r"(?:(?:forward|bend|drawer|squeeze|scratch|compression|distraction|stress|tension|spotted"
    r"|cell|type)[ \t]+)*"
    r"(?:disease|syndrome|syndrom|sykdom|sign|tegn|test|testen|fracture|fraktur|frakturen|cyst"
    r"|cyste|cysten|palsy|parese|phenomenon|fenomen|manoeuvre|maneuver|manøver|score|scale"
    r"|skala|angle|vinkel|nodes|knuter|changes|forandringer|classification|klassifikasjon"
    r"|criteria|kriterier|rules?|regel|reglene|virus|fever|feber|sarcoma|sarkom|lymphoma"
    r"|lymfom|tumou?r|neuroma|nevrom|contracture|kontraktur|tenosynovitis|as|asa|inc|ltd|llc"
    r"|gmbh|ab|corp|street|st|road|rd|lane|avenue|ave|gate|gata|veien|vei|vegen|allé|plass|torg"
    r"|terrasse|stien|hospital|sykehus|sykehuset|klinikk|klinikken|clinic|legesenter"
    r"|legekontor|university|universitet|school|skole|institute|institutt|foundation|stiftelse"
    r"|church|kirke|day|dag|wort|prize|prisen|oesophagus|esophagus|øsofagus|ulcer|ulcus|nerve"
    r"|duct|canal|bodies|reflex|refleks|triad|triade|disorder|lidelse|anomaly|anomali|aneurysm"
    r"|operation|operasjon|procedure|prosedyre|method|metode|protocol|protokoll)\b",
    re.IGNORECASE,
)
# What follows a word that makes it a product: a version ("Claude 3.5", "Julia 1.10", "Gemma
# 2") but not an age ("Kari 47 år") or a date; a product word ("Ruby on Rails", "Kafka
# cluster"). Not checked after a title or a label: "Pasient: Kari Nordmann 12.04.1985".
PRODUCT_AFTER = re.compile(
    r"[ \t]*-?[ \t]*v?\d+(?:\.\d+)*[bBkKmM]?(?![\d.:/,-])(?![ \t]*(?:år|years?|y/?o|yrs|kg|cm))"
    r"|[ \t]+(?:model|modell|modellen|api|sdk|on rails|app|appen|gpu|server|cluster"
    r"|embeddings?|endpoint|chip|superchip|pipeline|instance|release|plugin)\b",
    re.IGNORECASE,
)
# A house number before it ("12 Penny Lane", "221B Baker Street": addresses), or a saint
# ("St. Olavs hospital", "St. John's wort").
NOT_A_PERSON_BEFORE = re.compile(r"(?:\b\d+[A-Za-z]?|\b(?:St|Sankt|Saint|Sct)\.?)[ \t]+\Z")
# Sentence words that a capitalised run after a cue can start with ("User: Please help").
SENTENCE_WORDS = words_of(
    """The A An This That These Those It He She They We You I My Your His Her Our Their
    Please Can Could Would Should Shall Must May Might Is Are Was Were Be Been Do Does Did Have
    Has Had How What When Where Why Who Which Yes No Not Ok Okay Sure Thanks Thank Hi Hello Hey
    Dear If Then So And Or But For With From To In On At By Of As Here There Also Just Now
    Today Tomorrow Yesterday Good Great New Old Mr Mrs Ms Dr Det Den De Dette Denne Disse Han
    Hun Jeg Vi Du Dere Min Mitt Mine Din Ditt Dine Hennes Deres Kan Kunne Vil Ville Skal Skulle
    Må Hvordan Hva Hvor Hvorfor Når Hvem Hvilken Hvilke Ja Nei Takk Hei Hallo Kjære Og Eller
    Men Fordi Om Hvis Med Uten Til Fra Etter Før Ved Hos Nå Her Der Også Bare God Godt Ny Nye
    Ikke Ingen Alle Noen Se Ring Send Sjekk Book Bestill Sett Gi Få Lag Skriv Bruk Use Call
    Check Send Write Make Let Get Give See Tell Ask Patient Pasient Pasienten Kunde Kunden
    Customer Client Klient Lege Legen Doctor Nurse Navn Name Diagnose Diagnosis Tlf Telefon
    Phone Epost Email Adresse Address Dato Date Kl Time Timen Notat Note Journal Status
    Male Female Man Woman Mann Kvinne Gutt Jente Barn Boy Girl Child Unknown Ukjent Anonymous
    Anonym None Ingen Team Support Everyone All Alle Norwegian English Swedish Danish British
    American German French Norsk Svensk Dansk Engelsk Accounts Payable Sales Billing Marketing
    Finance Legal Reception Resepsjonen Økonomi Regnskap Kundeservice Kundesenter Admin
    Administrator Staff Ansatte Styret Board Management Ledelsen"""
)
# Words after a name that make the whole a place or an institution named after someone:
# "Martina Hansens Hospital", "Karl Johans Gate", "Ole Bull Scene".
INSTITUTIONS = words_of(
    """Hospital Sykehus Sykehuset Klinikk Klinikken Clinic Legesenter Legekontor University
    Universitet School Skole Institute Institutt Foundation Stiftelse Church Kirke Street Road
    Lane Avenue Gate Gata Vei Veien Plass Center Centre Senter Hotel Hotell Group Gruppen
    Scene Museum Museet Building Bygg College Academy Akademi Award Prize Prisen Kommune
    Kommunen Fylkeskommune Helse Sykehjem Apotek Apoteket Mountain Mountains River Valley
    Memorial Bridge Tower Station Airport Square Line Stadium Arena"""
)
# Verbs that, after a given name that is also a word, say it is someone ("Per ringte").
VERBS = words_of(
    """ringte ringer sa sier kom kommer har hadde er var fikk får skal vil kan må ønsker ønsket
    meldte melder rapporterer rapporterte forteller fortalte trenger trengte spurte spør mener
    tror føler opplever opplevde klager klaget ble gikk går skriver skrev svarte svarer
    called calls said says asked asks told tells wrote writes replied replies reported reports
    complained mentioned"""
)
# What people do in notes and tickets, after a name on no list: "Oluwaseun Adeyemi said".
SPEECH_VERBS = words_of(
    """said says asked asks told tells wrote writes replied replies reported reports called
    calls complained mentioned confirmed explained sa sier spurte spør fortalte forteller skrev
    skriver svarte svarer ringte ringer meldte melder rapporterer rapporterte klager klaget
    bekreftet forklarte"""
)
# After a known person's name that is also a word: "Rose will return", "Will has called".
AFTER_A_PERSON = VERBS | words_of(
    "will would can could should shall may might must is was has had did does"
)
# Family names are open-ended; these endings are names in Norway and Sweden (Fjellstad).
FAMILY_ENDINGS = ("sen", "son", "sson", "stad", "rud", "vik", "dal", "land", "heim", "haug")
