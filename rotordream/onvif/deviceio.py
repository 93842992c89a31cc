"""The ONVIF DeviceIO service (ver10): one video source, no relays or digital inputs."""

from rotordream.auth import roles
from rotordream.onvif import media
from rotordream.onvif.dispatch import PRE_AUTH, Table
from rotordream.onvif.soap import E, qn

OPS = Table("tmd")


def service_capabilities(call):
    """tmd:Capabilities: one video source and nothing else."""
    return E("tmd:Capabilities", VideoSources=1, VideoOutputs=0, AudioSources=0,
             AudioOutputs=0, RelayOutputs=0, SerialPorts=0, DigitalInputs=0)


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The DeviceIO service's capabilities."""
    return E("tmd:GetServiceCapabilitiesResponse", service_capabilities(call))


@OPS.op("GetDigitalInputs", roles.STATUS_READ)
def get_digital_inputs(call):
    """There are none."""
    return E("tmd:GetDigitalInputsResponse")


# DeviceIO's GetVideoSources is the media service's element (deviceio.wsdl reuses it).
OPS[qn("trt:GetVideoSources")] = media.OPS[qn("trt:GetVideoSources")]
