"""The ONVIF Recording Control service (ver10 recording) over the recorder (IRecorder).

Each file of the recordings index is one ONVIF recording (its token is the
recording id REST and RTSP use) with one video track, ``video``: stream1 as it
was recorded, H.264 remuxed, never re-encoded. Recordings are made by the one
recording job, ``record_job``, which records stream1: its mode is the ``record``
state key (Active: recording), so ``SetRecordingJobMode`` and
``CreateRecordingJob`` (which hands back that one job) are the same command as a
REST or WebSocket ``record`` write, for operators only. Recordings are created by
the job and removed by retention or the REST API, so CreateRecording,
DeleteRecording and the track operations answer what the camera cannot do.
"""

from rotordream.auth import roles
from rotordream.onvif import media, soap
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E
from rotordream.recording.store import UnknownRecording, iso

OPS = Table("trc")

JOB = "record_job"        # the token the ONVIF events name the job by, too
TRACK = "video"
ACTIVE, IDLE = "Active", "Idle"
SOURCE_PROFILE = "http://www.onvif.org/ver10/schema/Profile"   # a job source that is a profile


# -- what every Profile G service reads ----------------------------------------------

def available(call):
    """True when the camera records (a recorder is configured)."""
    return call.ctx.recorder is not None


def recorder(call):
    """The recorder, or ter:ActionNotSupported when this camera has none."""
    if call.ctx.recorder is None:
        raise soap.receiver(("ter:ActionNotSupported", "ter:NoRecording"),
                            "this camera does not record")
    return call.ctx.recorder


def entries(call):
    """The recordings, oldest first."""
    store = recorder(call).store
    return sorted(store.entries.values(), key=lambda e: (e["start_ts"], e["id"]))


def entry(call, token):
    """The recording ``token``; ter:InvalidArgVal/ter:NoRecording when there is none."""
    try:
        return recorder(call).store.get(token)
    except UnknownRecording:
        raise soap.invalid_arg("ter:NoRecording", "no recording %r" % (token,)) from None


def span(call, e):
    """(start, end) POSIX times of recording ``e`` (end: now while it is being written)."""
    if e.get("end_ts") is not None and not e.get("recording"):
        return e["start_ts"], e["end_ts"]
    seg = recorder(call).segment
    if seg is not None and seg.id == e["id"]:
        return e["start_ts"], e["start_ts"] + seg.duration
    return e["start_ts"], e.get("end_ts") or e["start_ts"]


def xs_time(ts):
    """xs:dateTime with milliseconds in UTC."""
    return iso(ts)


def source_information(call, tag="tt:Source"):
    """tt:RecordingSourceInformation: this camera's stream1."""
    state = call.ctx.state
    address = call.ctx.stream_urls(_host(call))["stream1"]
    return E(tag, E("tt:SourceId", address), E("tt:Name", state.get("device-name") or "camera"),
             E("tt:Location", state.get("device-location") or ""),
             E("tt:Description", "stream1, H.264"), E("tt:Address", address))


def _host(call):
    return "[%s]" % call.host if ":" in call.host else call.host


def content(e):
    """The recording's description: its name, else what it holds."""
    return e.get("name") or "stream1 recording"


def track_information(call, e, tag="tt:Track"):
    """tt:TrackInformation of the recording's video track."""
    start, end = span(call, e)
    return E(tag, E("tt:TrackToken", TRACK), E("tt:TrackType", "Video"),
             E("tt:Description", "H.264 video"), E("tt:DataFrom", xs_time(start)),
             E("tt:DataTo", xs_time(end)))


def recording_information(call, e, tag="tt:RecordingInformation"):
    """tt:RecordingInformation of recording ``e``."""
    start, end = span(call, e)
    return E(tag, E("tt:RecordingToken", e["id"]), source_information(call),
             E("tt:EarliestRecording", xs_time(start)), E("tt:LatestRecording", xs_time(end)),
             E("tt:Content", content(e)), track_information(call, e),
             E("tt:RecordingStatus", "Recording" if e.get("recording") else "Stopped"))


def video_attributes(call, e):
    """(width, height, fps, kbit/s) of recording ``e`` (stream1's now while unmeasured)."""
    s = media.stream_settings(call.ctx.state, "stream1")
    width, height, fps = e.get("width") or s["width"], e.get("height") or s["height"], \
        e.get("fps") or s["fps"]
    duration = e.get("duration") or 0
    kbps = int(e["size"] * 8 / 1000 / duration) if duration and e.get("size") else s["bitrate"]
    return width, height, float(fps), kbps


# -- the job ---------------------------------------------------------------------

def job_mode(call):
    """Active while recording (``record`` true), else Idle (paused writes nothing)."""
    return ACTIVE if call.ctx.state.get("record") is True else IDLE


def _job_recording(call):
    """The recording the job writes into now, else the one it wrote last (its token)."""
    rec = recorder(call)
    if rec.segment is not None:
        return rec.segment.id
    latest = rec.store.latest()
    return latest["id"] if latest else JOB


def job_configuration(call, tag="trc:JobConfiguration", mode=None):
    """tt:RecordingJobConfiguration of the one job (stream1's source, the video track)."""
    return E(tag, E("tt:RecordingToken", _job_recording(call)),
             E("tt:Mode", mode or job_mode(call)), E("tt:Priority", 1),
             E("tt:Source", _source_token(),
               E("tt:Tracks", E("tt:SourceTag", "video"), E("tt:Destination", TRACK))))


def _source_token():
    """stream1's media profile: what the job records."""
    return E("tt:SourceToken", E("tt:Token", media.PROFILES[0]), Type=SOURCE_PROFILE)


def _set_mode(call, mode):
    if mode not in (ACTIVE, IDLE):
        raise soap.invalid_arg("ter:BadConfiguration", "Mode is Active or Idle, not %r"
                               % (mode,))
    if mode != job_mode(call):
        # The same command as a REST or WebSocket ``record`` write (the state checks the
        # caller's permission and the recorder acts).
        call.ctx.state.set({"record": mode == ACTIVE}, call.principal, origin="onvif")


def _job_token(call):
    token = soap.value(call.request, "JobToken")
    if token != JOB:
        raise soap.invalid_arg("ter:NoRecordingJob", "no recording job %r" % (token,))
    recorder(call)
    return token


# -- operations --------------------------------------------------------------------

def service_capabilities(call):
    """trc:Capabilities."""
    return E("trc:Capabilities", DynamicRecordings=False, DynamicTracks=False,
             Encoding="H264", MaxRate=20000.0, MaxTotalRate=20000.0,
             MaxRecordings=float(10000), MaxRecordingJobs=1, Options=True,
             MetadataRecording=False)


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The recording service's capabilities."""
    return E("trc:GetServiceCapabilitiesResponse", service_capabilities(call))


def recording_configuration(call, e, tag):
    """tt:RecordingConfiguration of recording ``e`` (retention is by free space: PT0S)."""
    return E(tag, source_information(call), E("tt:Content", content(e)),
             E("tt:MaximumRetentionTime", "PT0S"))


@OPS.op("GetRecordings", roles.RECORDINGS_READ)
def get_recordings(call):
    """Every recording with its configuration and its one track."""
    return E("trc:GetRecordingsResponse", [
        E("trc:RecordingItem", E("tt:RecordingToken", e["id"]),
          recording_configuration(call, e, "tt:Configuration"),
          E("tt:Tracks", E("tt:Track", E("tt:TrackToken", TRACK), E(
              "tt:Configuration", E("tt:TrackType", "Video"),
              E("tt:Description", "H.264 video")))))
        for e in entries(call)])


@OPS.op("GetRecordingConfiguration", roles.RECORDINGS_READ)
def get_recording_configuration(call):
    """One recording's configuration."""
    e = entry(call, soap.value(call.request, "RecordingToken"))
    return E("trc:GetRecordingConfigurationResponse",
             recording_configuration(call, e, "trc:RecordingConfiguration"))


@OPS.op("GetTrackConfiguration", roles.RECORDINGS_READ)
def get_track_configuration(call):
    """The video track's configuration."""
    entry(call, soap.value(call.request, "RecordingToken"))
    if soap.value(call.request, "TrackToken") != TRACK:
        raise soap.invalid_arg("ter:NoTrack", "the recordings have one track, %r" % TRACK)
    return E("trc:GetTrackConfigurationResponse", E(
        "trc:TrackConfiguration", E("tt:TrackType", "Video"),
        E("tt:Description", "H.264 video")))


@OPS.op("GetRecordingOptions", roles.RECORDINGS_READ)
def get_recording_options(call):
    """No more jobs or tracks can be made; the job's source is stream1."""
    entry(call, soap.value(call.request, "RecordingToken"))
    return E("trc:GetRecordingOptionsResponse", E(
        "trc:Options", E("trc:Job", Spare=0, CompatibleSources=media.PROFILES[0]),
        E("trc:Track", SpareTotal=0, SpareVideo=0, SpareAudio=0, SpareMetadata=0)))


@OPS.op("GetRecordingJobs", roles.RECORDINGS_READ)
def get_recording_jobs(call):
    """The one job, Active while the camera records."""
    recorder(call)
    return E("trc:GetRecordingJobsResponse", E(
        "trc:JobItem", E("tt:JobToken", JOB), job_configuration(call, "tt:JobConfiguration")))


@OPS.op("GetRecordingJobConfiguration", roles.RECORDINGS_READ)
def get_recording_job_configuration(call):
    """The job's configuration."""
    _job_token(call)
    return E("trc:GetRecordingJobConfigurationResponse", job_configuration(call))


@OPS.op("GetRecordingJobState", roles.RECORDINGS_READ)
def get_recording_job_state(call):
    """Active or Idle, for the job, its source and its track."""
    _job_token(call)
    state = job_mode(call)
    return E("trc:GetRecordingJobStateResponse", E(
        "trc:State", E("tt:RecordingToken", _job_recording(call)), E("tt:State", state),
        E("tt:Sources", _source_token(), E("tt:State", state),
          E("tt:Tracks", E("tt:Track", E("tt:SourceTag", "video"),
                                E("tt:Destination", TRACK), E("tt:State", state))))))


@OPS.op("SetRecordingJobMode", roles.RECORDING_CONTROL)
def set_recording_job_mode(call):
    """Active starts recording, Idle stops it (the ``record`` key)."""
    _job_token(call)
    _set_mode(call, soap.value(call.request, "Mode"))
    return E("trc:SetRecordingJobModeResponse")


@OPS.op("CreateRecordingJob", roles.RECORDING_CONTROL)
def create_recording_job(call):
    """There is one job, recording stream1: it is handed back, in the mode asked for."""
    recorder(call)
    conf = soap.child(call.request, "JobConfiguration")
    if conf is None:
        raise soap.invalid_arg("ter:BadConfiguration", "JobConfiguration is missing")
    token = soap.value(conf, "RecordingToken")
    if token not in (None, JOB) and token not in recorder(call).store.entries:
        raise soap.invalid_arg("ter:NoRecording", "no recording %r" % token)
    mode = soap.value(conf, "Mode") or IDLE
    _set_mode(call, mode)
    return E("trc:CreateRecordingJobResponse", E("trc:JobToken", JOB),
             job_configuration(call, mode=mode))


@OPS.op("DeleteRecordingJob", roles.RECORDING_CONTROL)
def delete_recording_job(call):
    """Refused: the one job is fixed (set it Idle to stop recording)."""
    _job_token(call)
    raise soap.receiver(("ter:Action", "ter:CannotDelete"),
                        "the camera's recording job is fixed; set its mode to Idle to stop")


def _fixed(name, why):
    def refuse(call):
        recorder(call)
        raise soap.receiver(("ter:Action", "ter:NotSupported"), why)
    refuse.__doc__ = "Refused: %s." % why
    OPS.op(name, roles.RECORDING_CONTROL)(refuse)


for _name in ("CreateRecording", "DeleteRecording", "SetRecordingConfiguration"):
    _fixed(_name, "recordings are made by the recording job and removed by retention or "
                  "the REST API")
for _name in ("CreateTrack", "DeleteTrack", "SetTrackConfiguration"):
    _fixed(_name, "a recording has one video track")
_fixed("SetRecordingJobConfiguration", "the job records stream1; SetRecordingJobMode "
                                       "starts and stops it")
