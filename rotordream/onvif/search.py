"""The ONVIF Recording Search service (ver10 search) over the recordings index.

Searches run at once (the index is in memory) and their results wait in a
search session until the client fetches them, ends the search, or lets it
lapse: a session lives ``KeepAliveTime`` after its last use, capped by
:data:`MAX_KEEP_ALIVE`, and at most :data:`MAX_SEARCHES` live at once.

Events are searched over the recordings: each recording's start and end
(``tns1:RecordingHistory/Recording/State``), and the motion and motor-fault
changes the event broker saw while a recording was being made (kept in the
broker's bounded history since the daemon started).
"""

import bisect
import secrets

from lxml import etree

from rotordream.auth import roles
from rotordream.onvif import recording, soap, topics
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E

OPS = Table("tse")

MAX_SEARCHES = 16
MAX_KEEP_ALIVE = 300.0     # seconds a search may wait unused
MAX_RESULTS = 1000         # results one search keeps
MAX_FILTER = 1024          # characters of a RecordingInformationFilter
MAX_PREDICATE_DEPTH = 2    # [..] nested in [..]: each level multiplies the work by the nodes
MAX_OVERLAP = 4            # recordings one instant may fall in (a new one starts at the
                           # keyframe before its command, inside the one before)
QUEUED, SEARCHING, COMPLETED, UNKNOWN = "Queued", "Searching", "Completed", "Unknown"
# Broker topics whose changes are searchable (the recording state comes from the index).
HISTORY_TOPICS = (topics.MOTION.name, topics.MOTION_ALARM.name, topics.MOTOR_FAILURE.name)


class Search:
    """One search session: its results not yet fetched and when it lapses."""

    def __init__(self, token, kind, results, keep_alive, now, endpoint):
        self.token = token
        self.kind = kind            # "recordings" or "events"
        self.results = list(results)
        self.keep_alive = keep_alive
        self.expires = now + keep_alive
        self.endpoint = endpoint    # the time the search reached (EndSearch answers it)

    def touch(self, now):
        """Used: it lives another KeepAliveTime."""
        self.expires = now + self.keep_alive

    def take(self, count):
        """Up to ``count`` results, removed from the session."""
        taken, self.results = self.results[:count], self.results[count:]
        return taken


class Searches:
    """The live search sessions (bounded, lapsing on their own clock)."""

    def __init__(self):
        self.sessions = {}

    def _purge(self, now):
        for token, s in list(self.sessions.items()):
            if s.expires <= now:
                del self.sessions[token]

    def start(self, kind, results, keep_alive, now, endpoint):
        """A new session's token; ter:ResourceProblem when all are taken."""
        self._purge(now)
        if len(self.sessions) >= MAX_SEARCHES:
            raise soap.receiver(("ter:Action", "ter:ResourceProblem"),
                                "%d searches are open; end one first" % MAX_SEARCHES)
        token = "search-" + secrets.token_hex(8)
        self.sessions[token] = Search(token, kind, results, keep_alive, now, endpoint)
        return token

    def get(self, token, now, kind=None):
        """The live session ``token`` (of ``kind``), touched; ter:InvalidToken otherwise."""
        self._purge(now)
        s = self.sessions.get(token)
        if s is None or (kind is not None and s.kind != kind):
            raise soap.invalid_arg("ter:InvalidToken", "no search %r (ended or lapsed)"
                                   % (token,))
        s.touch(now)
        return s

    def end(self, token, now):
        """End a session; the endpoint it reached."""
        s = self.get(token, now)
        del self.sessions[token]
        return s.endpoint


SEARCHES = Searches()


def _now(call):
    return call.ctx.reactor.seconds()


def _keep_alive(call):
    raw = soap.value(call.request, "KeepAliveTime")
    if raw is None:
        raise soap.invalid_arg("ter:InvalidArgVal", "KeepAliveTime is missing")
    try:
        return max(1.0, min(MAX_KEEP_ALIVE, topics.parse_duration(raw)))
    except ValueError as e:
        raise soap.invalid_arg("ter:InvalidArgVal", str(e)) from None


def _time(call, name, required=True):
    raw = soap.value(call.request, name)
    if raw is None:
        if required:
            raise soap.invalid_arg("ter:InvalidArgVal", "%s is missing" % name)
        return None
    try:
        return topics.parse_datetime(raw)
    except ValueError:
        raise soap.invalid_arg("ter:InvalidArgVal", "%s is not a dateTime" % name) from None


def _max_matches(call):
    n = soap.number(call.request, "MaxMatches", kind=int)
    return MAX_RESULTS if n is None or n <= 0 else min(n, MAX_RESULTS)


# -- scope ---------------------------------------------------------------------------

def _without_namespaces(el):
    """A copy of ``el`` with every element in no namespace (ONVIF's search XPath names
    elements without prefixes)."""
    copy = etree.fromstring(etree.tostring(el))
    for node in copy.iter():
        if isinstance(node.tag, str):
            node.tag = etree.QName(node).localname
    etree.cleanup_namespaces(copy)
    return copy


def _information_filter(text):
    """A predicate on a recording's tt:RecordingInformation from an ONVIF XPath filter."""
    if len(text) > MAX_FILTER:
        raise soap.invalid_arg("ter:InvalidArgVal", "the filter is longer than %d characters"
                               % MAX_FILTER)
    # Evaluated on the reactor: predicates nested deeper would cost the nodes' count to the
    # power of their depth.
    depth = deepest = 0
    for c in text:
        depth += (c == "[") - (c == "]")
        deepest = max(deepest, depth)
    if deepest > MAX_PREDICATE_DEPTH:
        raise soap.invalid_arg("ter:InvalidArgVal", "predicates nest at most %d deep"
                               % MAX_PREDICATE_DEPTH)
    try:
        expression = etree.XPath(text)
    except etree.XPathError as e:
        raise soap.invalid_arg("ter:InvalidArgVal", "bad RecordingInformationFilter: %s"
                               % e) from None

    def holds(info):
        try:
            result = expression(_without_namespaces(info))
        except etree.XPathError:
            return False
        return bool(result) if not isinstance(result, list) else len(result) > 0
    return holds


def scoped(call):
    """The recordings (oldest first) a request's tt:Scope selects."""
    scope = soap.child(call.request, "Scope")
    found = recording.entries(call)
    if scope is None:
        return found
    wanted = [el.text.strip() for el in soap.children(scope, "IncludedRecordings") if el.text]
    if wanted:
        found = [e for e in found if e["id"] in wanted]
    sources = [soap.value(el, "Token") for el in soap.children(scope, "IncludedSources")]
    if any(sources) and not set(sources) & {"stream1", recording.JOB}:
        found = []  # every recording is of stream1
    expr = soap.value(scope, "RecordingInformationFilter")
    if expr:
        holds = _information_filter(expr)
        found = [e for e in found if holds(recording.recording_information(call, e))]
    return found


# -- capabilities and summaries -----------------------------------------------------------

def service_capabilities(call):
    """tse:Capabilities."""
    return E("tse:Capabilities", MetadataSearch=False, GeneralStartEvents=True)


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The search service's capabilities."""
    return E("tse:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetRecordingSummary", roles.RECORDINGS_READ)
def get_recording_summary(call):
    """The span of all recordings and how many there are."""
    found = recording.entries(call)
    spans = [recording.span(call, e) for e in found]
    now = _now(call)
    start = min((s for s, _ in spans), default=now)
    end = max((e for _, e in spans), default=now)
    return E("tse:GetRecordingSummaryResponse", E(
        "tse:Summary", E("tt:DataFrom", recording.xs_time(start)),
        E("tt:DataUntil", recording.xs_time(end)), E("tt:NumberRecordings", len(found))))


@OPS.op("GetRecordingInformation", roles.RECORDINGS_READ)
def get_recording_information(call):
    """One recording's information."""
    e = recording.entry(call, soap.value(call.request, "RecordingToken"))
    return E("tse:GetRecordingInformationResponse",
             recording.recording_information(call, e, "tse:RecordingInformation"))


@OPS.op("GetMediaAttributes", roles.RECORDINGS_READ)
def get_media_attributes(call):
    """The video attributes of the recordings (all, or those named) holding ``Time``."""
    when = _time(call, "Time")
    tokens = [el.text.strip() for el in soap.children(call.request, "RecordingTokens")
              if el.text]
    chosen = [recording.entry(call, t) for t in tokens] if tokens else recording.entries(call)
    out = []
    for e in chosen:
        start, end = recording.span(call, e)
        if not start <= when <= end:
            continue
        width, height, fps, kbps = recording.video_attributes(call, e)
        out.append(E("tse:MediaAttributes", E("tt:RecordingToken", e["id"]), E(
            "tt:TrackAttributes", recording.track_information(call, e, "tt:TrackInformation"),
            E("tt:VideoAttributes", E("tt:Bitrate", kbps), E("tt:Width", width),
              E("tt:Height", height), E("tt:Encoding", "H264"), E("tt:Framerate", fps))),
            E("tt:From", recording.xs_time(start)), E("tt:Until", recording.xs_time(end))))
    return E("tse:GetMediaAttributesResponse", out)


# -- recording search -------------------------------------------------------------------

@OPS.op("FindRecordings", roles.RECORDINGS_READ)
def find_recordings(call):
    """Start a search for the recordings in the scope (newest first); its token."""
    keep = _keep_alive(call)
    found = sorted(scoped(call), key=lambda e: (e["start_ts"], e["id"]), reverse=True)
    found = found[:_max_matches(call)]
    now = _now(call)
    token = SEARCHES.start("recordings", [e["id"] for e in found], keep, now, now)
    return E("tse:FindRecordingsResponse", E("tse:SearchToken", token))


def _result_count(call):
    n = soap.number(call.request, "MaxResults", kind=int)
    return MAX_RESULTS if n is None or n <= 0 else min(n, MAX_RESULTS)


@OPS.op("GetRecordingSearchResults", roles.RECORDINGS_READ)
def get_recording_search_results(call):
    """The next results of a recording search (Completed once none are left)."""
    s = SEARCHES.get(soap.value(call.request, "SearchToken"), _now(call), "recordings")
    store = recording.recorder(call).store
    infos = [recording.recording_information(call, store.entries[rid])
             for rid in s.take(_result_count(call)) if rid in store.entries]
    return E("tse:GetRecordingSearchResultsResponse", E(
        "tse:ResultList", E("tt:SearchState", SEARCHING if s.results else COMPLETED), infos))


# -- event search -------------------------------------------------------------------------

class _Found:
    """One event result: when, in which recording, the event, whether it is a start state."""

    def __init__(self, when, rid, event, start_state=False):
        self.when, self.rid, self.event, self.start_state = when, rid, event, start_state


def _recording_event(rid, when, is_recording, start_state=False):
    event = topics.Event(topics.RECORDING_STATE, when, {"RecordingToken": rid},
                         {"IsRecording": is_recording},
                         topics.INITIALIZED if start_state else topics.CHANGED)
    return _Found(when, rid, event, start_state)


def _history(call):
    broker = call.ctx.events
    return list(getattr(broker, "history", ()) if broker is not None else ())


def find_events_in(call, start, end, recordings, topic_filter, start_state):
    """The events between ``start`` and ``end`` (either order) in ``recordings``, in the
    search's direction."""
    lo, hi = (start, end) if end is None or end >= start else (end, start)
    forward = end is None or end >= start
    found = []
    spans = {e["id"]: recording.span(call, e) for e in recordings}
    for e in recordings:
        s, t = spans[e["id"]]
        found.append(_recording_event(e["id"], s, True))
        if not e.get("recording"):
            found.append(_recording_event(e["id"], t, False))
        if start_state and s < start <= t:
            found.append(_recording_event(e["id"], start, True, start_state=True))
    ordered = sorted((s, t, rid) for rid, (s, t) in spans.items())
    starts = [s for s, _, _ in ordered]
    for event in _history(call):
        if event.topic.name not in HISTORY_TOPICS:
            continue
        # The recordings started by then, the latest few: one holds it, if any does.
        at = bisect.bisect_right(starts, event.utc)
        for s, t, rid in ordered[max(0, at - MAX_OVERLAP):at]:
            if event.utc <= t:
                found.append(_Found(event.utc, rid, event))
    found = [f for f in found if (f.start_state or lo <= f.when and
                                  (hi is None or f.when <= hi)) and
             topic_filter.selects(f.event)]
    found.sort(key=lambda f: (f.when, not f.start_state, f.rid), reverse=not forward)
    return found


@OPS.op("FindEvents", roles.RECORDINGS_READ)
def find_events(call):
    """Start a search for events between StartPoint and EndPoint in the scope; its token."""
    start = _time(call, "StartPoint")
    end = _time(call, "EndPoint", required=False)
    keep = _keep_alive(call)
    try:
        topic_filter = topics.parse_filter(soap.child(call.request, "SearchFilter"))
    except topics.FilterError as e:
        raise soap.invalid_arg("ter:InvalidArgVal", str(e)) from None
    start_state = soap.boolean(call.request, "IncludeStartState", False)
    found = find_events_in(call, start, end, scoped(call), topic_filter, start_state)
    found = found[:_max_matches(call)]
    now = _now(call)
    token = SEARCHES.start("events", found, keep, now, end if end is not None else now)
    return E("tse:FindEventsResponse", E("tse:SearchToken", token))


def _event_result(f):
    return E("tt:Result", E("tt:RecordingToken", f.rid), E("tt:TrackToken", recording.TRACK),
             E("tt:Time", recording.xs_time(f.when)),
             E("tt:Event", list(topics.notification(f.event))),
             E("tt:StartStateEvent", f.start_state))


@OPS.op("GetEventSearchResults", roles.RECORDINGS_READ)
def get_event_search_results(call):
    """The next results of an event search, in its order (Completed once none are left)."""
    s = SEARCHES.get(soap.value(call.request, "SearchToken"), _now(call), "events")
    results = [_event_result(f) for f in s.take(_result_count(call))]
    return E("tse:GetEventSearchResultsResponse", E(
        "tse:ResultList", E("tt:SearchState", SEARCHING if s.results else COMPLETED), results))


@OPS.op("GetSearchState", roles.RECORDINGS_READ)
def get_search_state(call):
    """Searches complete at once: Completed while the session lives."""
    SEARCHES.get(soap.value(call.request, "SearchToken"), _now(call))
    return E("tse:GetSearchStateResponse", E("tse:State", COMPLETED))


@OPS.op("EndSearch", roles.RECORDINGS_READ)
def end_search(call):
    """End a search session; the point in time it reached."""
    endpoint = SEARCHES.end(soap.value(call.request, "SearchToken"), _now(call))
    return E("tse:EndSearchResponse", E("tse:Endpoint", recording.xs_time(endpoint)))
