"""Home Assistant's ONVIF setup sequence with onvif-zeep-async (run in its own venv).

Usage: python ha_sequence.py HOST PORT USER PASSWORD; prints one JSON object.
Mirrors homeassistant/components/onvif/device.py: update_xaddrs with clock
adjustment, GetSystemDateAndTime, GetDeviceInformation, GetNetworkInterfaces,
media GetServiceCapabilities, GetProfiles, PTZ GetConfigurationOptions and
GetPresets, imaging GetImagingSettings, GetStreamUri and the snapshot with
HTTP Digest.
"""

import asyncio
import json
import sys

from onvif import ONVIFCamera


async def main(host, port, user, password):
    out = {}
    cam = ONVIFCamera(host, port, user, password, adjust_time=True)
    try:
        await cam.update_xaddrs()
        out["xaddrs"] = dict(cam.xaddrs)
        device = await cam.create_devicemgmt_service()
        when = await device.GetSystemDateAndTime()
        out["date_time_type"] = when.DateTimeType
        out["utc_year"] = when.UTCDateTime.Date.Year
        info = await device.GetDeviceInformation()
        out["manufacturer"] = info.Manufacturer
        out["serial"] = info.SerialNumber
        macs = [i.Info.HwAddress for i in await device.GetNetworkInterfaces()
                if i.Enabled and i.Info]
        out["macs"] = macs
        caps = await cam.get_capabilities()
        out["capability_keys"] = sorted(k for k, v in (caps or {}).items() if v)
        media = await cam.create_media_service()
        media_caps = await media.GetServiceCapabilities()
        out["snapshot_capable"] = bool(media_caps.SnapshotUri)
        profiles = await media.GetProfiles()
        out["profiles"] = []
        ptz = await cam.create_ptz_service()
        imaging = await cam.create_imaging_service()
        for p in profiles:
            vec = p.VideoEncoderConfiguration
            if not vec or vec.Encoding != "H264":
                continue
            entry = {"token": p.token, "width": vec.Resolution.Width,
                     "height": vec.Resolution.Height}
            req = media.create_type("GetStreamUri")
            req.ProfileToken = p.token
            req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            entry["stream_uri"] = (await media.GetStreamUri(req)).Uri
            if p.PTZConfiguration:
                conf = p.PTZConfiguration
                entry["continuous"] = bool(conf.DefaultContinuousPanTiltVelocitySpace)
                opts = await ptz.GetConfigurationOptions(
                    {"ConfigurationToken": p.PTZConfiguration.token})
                entry["ptz_spaces"] = len(opts.Spaces.ContinuousPanTiltVelocitySpace)
                entry["presets"] = [x.Name for x in await ptz.GetPresets(
                    {"ProfileToken": p.token})]
            settings = await imaging.GetImagingSettings(
                {"VideoSourceToken": p.VideoSourceConfiguration.SourceToken})
            entry["brightness"] = settings.Brightness
            out["profiles"].append(entry)
        image = await cam.get_snapshot(out["profiles"][0]["token"])
        out["snapshot_bytes"] = len(image or b"")
        out["snapshot_jpeg"] = bool(image and image[:2] == b"\xff\xd8")
    finally:
        await cam.close()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]))
