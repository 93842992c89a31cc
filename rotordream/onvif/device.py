"""The ONVIF Device service (ver10 devicemgmt): identity, capabilities, services, time,
network, scopes, discovery mode, users, reboot.

Why it is long: devicemgmt is one WSDL service with 25 operations here
(identity, capabilities, network, time, scopes, users, reboot); each is a
short function, and splitting them by topic would scatter one service's
operation table over several modules.
"""

import os
import sys
import time

from twisted.logger import Logger

from rotordream import PRODUCT, __version__
from rotordream.auth import roles
from rotordream.auth.users import UserError
from rotordream.onvif import (deviceio, events, hostinfo, imaging, media, media2, ptz,
                             recording, replay, scopes, search, soap)
from rotordream.onvif.dispatch import LEVEL_TO_ROLE, PRE_AUTH, ROLE_TO_LEVEL, Table
from rotordream.onvif.soap import E, NSMAP

log = Logger()

OPS = Table("tds")

# (service name in the path, namespace, version) for GetServices.
# The Profile G services, offered when the camera records.
RECORDING_SERVICES = ("recording", "search", "replay")
SERVICE_LIST = (("device", NSMAP["tds"], (2, 60)), ("media", NSMAP["trt"], (2, 60)),
                ("media2", NSMAP["tr2"], (2, 60)),
                ("recording", NSMAP["trc"], (2, 60)), ("search", NSMAP["tse"], (2, 60)),
                ("replay", NSMAP["trp"], (2, 60)),
                ("ptz", NSMAP["tptz"], (2, 60)), ("imaging", NSMAP["timg"], (2, 60)),
                ("events", NSMAP["tev"], (2, 60)), ("deviceio", NSMAP["tmd"], (2, 60)))


def _ok(name):
    return E("tds:%sResponse" % name)


# -- pre-auth -------------------------------------------------------------------

@OPS.op("GetSystemDateAndTime", PRE_AUTH)
def get_system_date_and_time(call):
    """The host clock, UTC and local; NTP when the kernel says it is synchronised."""
    now = time.time()
    utc, local = time.gmtime(now), time.localtime(now)

    def dt(tag, t):
        return E(tag, E("tt:Time", E("tt:Hour", t.tm_hour), E("tt:Minute", t.tm_min),
                        E("tt:Second", t.tm_sec)),
                 E("tt:Date", E("tt:Year", t.tm_year), E("tt:Month", t.tm_mon),
                   E("tt:Day", t.tm_mday)))
    return E("tds:GetSystemDateAndTimeResponse", E(
        "tds:SystemDateAndTime",
        E("tt:DateTimeType", "NTP" if hostinfo.clock_synchronized() else "Manual"),
        E("tt:DaylightSavings", bool(local.tm_isdst > 0)),
        E("tt:TimeZone", E("tt:TZ", hostinfo.posix_tz())),
        dt("tt:UTCDateTime", utc), dt("tt:LocalDateTime", local)))


def device_capabilities(call):
    """tt:Device capabilities (GetCapabilities)."""
    return E("tt:Device", E("tt:XAddr", call.xaddr("device")),
             E("tt:Network", E("tt:IPFilter", False), E("tt:ZeroConfiguration", False),
               E("tt:IPVersion6", False), E("tt:DynDNS", False)),
             E("tt:System", E("tt:DiscoveryResolve", True), E("tt:DiscoveryBye", True),
               E("tt:RemoteDiscovery", False), E("tt:SystemBackup", False),
               E("tt:SystemLogging", False), E("tt:FirmwareUpgrade", False),
               [E("tt:SupportedVersions", E("tt:Major", major), E("tt:Minor", minor))
                for major, minor in ((2, 60), (2, 0))]),
             E("tt:IO", E("tt:InputConnectors", 0), E("tt:RelayOutputs", 0)),
             E("tt:Security", E("tt:TLS1.1", False), E("tt:TLS1.2", False),
               E("tt:OnboardKeyGeneration", False), E("tt:AccessPolicyConfig", False),
               E("tt:X.509Token", False), E("tt:SAMLToken", False),
               E("tt:KerberosToken", False), E("tt:RELToken", False)))


def _capabilities(call, category):
    parts = {
        "Device": lambda: device_capabilities(call),
        "Events": lambda: E("tt:Events", E("tt:XAddr", call.xaddr("events")),
                            E("tt:WSSubscriptionPolicySupport", False),
                            E("tt:WSPullPointSupport", True),
                            E("tt:WSPausableSubscriptionManagerInterfaceSupport", False)),
        "Imaging": lambda: E("tt:Imaging", E("tt:XAddr", call.xaddr("imaging"))),
        "Media": lambda: E("tt:Media", E("tt:XAddr", call.xaddr("media")),
                           E("tt:StreamingCapabilities", E("tt:RTPMulticast", media.multicast_on(call)),
                             E("tt:RTP_TCP", True), E("tt:RTP_RTSP_TCP", True)),
                           E("tt:Extension", E("tt:ProfileCapabilities",
                                               E("tt:MaximumNumberOfProfiles", 2)))),
        "PTZ": lambda: E("tt:PTZ", E("tt:XAddr", call.xaddr("ptz"))),
    }
    tables = call.extra.get("tables")
    if tables is not None and not tables.get("events"):
        del parts["Events"]  # no event service registered in this build
    if category == "All":
        chosen = list(parts)
    elif category in parts:
        chosen = [category]
    else:
        raise soap.SoapFault("Receiver", ("ter:ActionNotSupported", "ter:NoSuchService"),
                             "no %s service on this device" % category)
    caps = E("tds:Capabilities", [parts[name]() for name in chosen])
    if category == "All":
        extension = [
            E("tt:DeviceIO", E("tt:XAddr", call.xaddr("deviceio")), E("tt:VideoSources", 1),
              E("tt:VideoOutputs", 0), E("tt:AudioSources", 0), E("tt:AudioOutputs", 0),
              E("tt:RelayOutputs", 0))
            if tables is None or tables.get("deviceio") else None]
        if recording.available(call):
            extension += [
                E("tt:Recording", E("tt:XAddr", call.xaddr("recording")),
                  E("tt:ReceiverSource", False), E("tt:MediaProfileSource", True),
                  E("tt:DynamicRecordings", False), E("tt:DynamicTracks", False),
                  E("tt:MaxStringLength", 64)),
                E("tt:Search", E("tt:XAddr", call.xaddr("search")),
                  E("tt:MetadataSearch", False)),
                E("tt:Replay", E("tt:XAddr", call.xaddr("replay")))]
        if any(el is not None for el in extension):
            caps.append(E("tt:Extension", extension))
    return caps


@OPS.op("GetCapabilities", PRE_AUTH)
def get_capabilities(call):
    """Capabilities of All or some categories, XAddrs on the address the client used."""
    categories = [c.text.strip() for c in soap.children(call.request, "Category") if c.text] \
        or ["All"]
    caps = [_capabilities(call, c) for c in categories]
    if len(caps) > 1:
        merged = caps[0]
        for extra in caps[1:]:
            for child in list(extra):
                merged.append(child)
        # Keep the schema's order (Analytics, Device, Events, Imaging, Media, PTZ, Extension).
        order = ["Device", "Events", "Imaging", "Media", "PTZ", "Extension"]
        merged[:] = sorted(merged, key=lambda c: order.index(c.tag.split("}")[1]))
        caps = [merged]
    return E("tds:GetCapabilitiesResponse", caps[0])


def service_capabilities(call, service):
    """The GetServiceCapabilities element of ``service`` (also used by GetServices)."""
    if service == "device":
        return E("tds:Capabilities",
                 E("tds:Network", IPFilter=False, ZeroConfiguration=False, IPVersion6=False,
                   DynDNS=False, Dot11Configuration=False, HostnameFromDHCP=False,
                   NTP=0, DHCPv6=False),
                 E("tds:Security", **{"TLS1.0": False, "TLS1.1": False, "TLS1.2": False,
                                      "OnboardKeyGeneration": False,
                                      "AccessPolicyConfig": False, "DefaultAccessPolicy": False,
                                      "Dot1X": False, "RemoteUserHandling": False,
                                      "X.509Token": False, "SAMLToken": False,
                                      "KerberosToken": False, "UsernameToken": True,
                                      "HttpDigest": True, "RELToken": False,
                                      "MaxUsers": 32, "MaxUserNameLength": 32,
                                      "MaxPasswordLength": 128}),
                 E("tds:System", DiscoveryResolve=True, DiscoveryBye=True,
                   RemoteDiscovery=False, SystemBackup=False, SystemLogging=False,
                   FirmwareUpgrade=False, HttpFirmwareUpgrade=False, HttpSystemBackup=False,
                   HttpSystemLogging=False, HttpSupportInformation=False))
    fn = _SERVICE_CAPABILITIES.get(service)
    return fn(call) if fn is not None else None


# The services that answer GetServiceCapabilities, imported explicitly (none of them
# imports this module).
_SERVICE_CAPABILITIES = {"deviceio": deviceio.service_capabilities,
                         "events": events.service_capabilities,
                         "imaging": imaging.service_capabilities,
                         "media": media.service_capabilities,
                         "media2": media2.service_capabilities,
                         "recording": recording.service_capabilities,
                         "search": search.service_capabilities,
                         "replay": replay.service_capabilities,
                         "ptz": ptz.service_capabilities}


@OPS.op("GetServiceCapabilities", PRE_AUTH)
def get_service_capabilities(call):
    """The device service's capabilities."""
    return E("tds:GetServiceCapabilitiesResponse", service_capabilities(call, "device"))


@OPS.op("GetServices", PRE_AUTH)
def get_services(call):
    """Every service with its namespace, address, version (and capabilities if asked)."""
    include = soap.boolean(call.request, "IncludeCapability", False)
    out = []
    tables = call.extra.get("tables")
    for name, ns, (major, minor) in SERVICE_LIST:
        if name in ("events", "deviceio") and tables is not None and not tables.get(name):
            continue
        if name in RECORDING_SERVICES and not recording.available(call):
            continue
        caps = None
        if include:
            inner = service_capabilities(call, name)
            caps = E("tds:Capabilities", inner) if inner is not None else None
        out.append(E("tds:Service", E("tds:Namespace", ns), E("tds:XAddr", call.xaddr(name)),
                     caps, E("tds:Version", E("tt:Major", major), E("tt:Minor", minor))))
    return E("tds:GetServicesResponse", out)


@OPS.op("GetWsdlUrl", PRE_AUTH)
def get_wsdl_url(call):
    """Where the ONVIF WSDLs live."""
    return E("tds:GetWsdlUrlResponse", E("tds:WsdlUrl", "http://www.onvif.org/Documents/"
                                                          "Specifications.aspx"))


@OPS.op("GetHostname", PRE_AUTH)
def get_hostname(call):
    """The host name (not from DHCP as far as we set it)."""
    return E("tds:GetHostnameResponse", E("tds:HostnameInformation", E("tt:FromDHCP", False),
                                          E("tt:Name", os.uname().nodename)))


@OPS.op("GetEndpointReference", PRE_AUTH)
def get_endpoint_reference(call):
    """The stable endpoint UUID WS-Discovery also announces."""
    return E("tds:GetEndpointReferenceResponse",
             E("tds:GUID", hostinfo.endpoint_uuid(call.ctx.config.server.state_dir)))


# -- identity, time, network ---------------------------------------------------

@OPS.op("GetDeviceInformation", roles.STATUS_READ)
def get_device_information(call):
    """Manufacturer, model, firmware, serial (from the MAC) and hardware id."""
    serial = hostinfo.primary_mac().replace(":", "").upper()
    return E("tds:GetDeviceInformationResponse", E("tds:Manufacturer", PRODUCT),
             E("tds:Model", PRODUCT + " Camera"), E("tds:FirmwareVersion", __version__),
             E("tds:SerialNumber", serial), E("tds:HardwareId", HARDWARE_ID))


HARDWARE_ID = "RD-1"


@OPS.op("SetSystemDateAndTime", roles.SYSTEM_ADMIN)
def set_system_date_and_time(call):
    """Accept only what is already true: the daemon never sets the host clock itself."""
    kind = soap.value(call.request, "DateTimeType")
    if kind == "NTP" and hostinfo.clock_synchronized() and \
            soap.child(call.request, "UTCDateTime") is None:
        return _ok("SetSystemDateAndTime")
    raise soap.receiver(("ter:Action", "ter:NotSupported"),
                        "the clock is the host's: set it with NTP or on the host "
                        "(timedatectl); the camera daemon does not change it")


@OPS.op("GetNetworkInterfaces", roles.STATUS_READ)
def get_network_interfaces(call):
    """Interfaces but loopback, with MAC, MTU and IPv4 address."""
    out = []
    for iface in hostinfo.interfaces():
        ipv4 = None
        if iface["ipv4"]:
            ipv4 = E("tt:IPv4", E("tt:Enabled", True), E("tt:Config", E(
                "tt:Manual", E("tt:Address", iface["ipv4"]),
                E("tt:PrefixLength", iface["prefix"])), E("tt:DHCP", False)))
        out.append(E("tds:NetworkInterfaces",
                     E("tt:Enabled", iface["up"]),
                     E("tt:Info", E("tt:Name", iface["name"]), E("tt:HwAddress", iface["mac"]),
                       E("tt:MTU", iface["mtu"])),
                     ipv4, token=iface["name"]))
    return E("tds:GetNetworkInterfacesResponse", out)


def _ip(tag, address):
    if ":" in address:
        return E(tag, E("tt:Type", "IPv6"), E("tt:IPv6Address", address))
    return E(tag, E("tt:Type", "IPv4"), E("tt:IPv4Address", address))


@OPS.op("GetDNS", roles.STATUS_READ)
def get_dns(call):
    """Name servers and search domains from resolv.conf."""
    servers, search = hostinfo.dns()
    return E("tds:GetDNSResponse", E("tds:DNSInformation", E("tt:FromDHCP", False),
                                     [E("tt:SearchDomain", s) for s in search],
                                     [_ip("tt:DNSManual", s) for s in servers]))


@OPS.op("GetNTP", roles.STATUS_READ)
def get_ntp(call):
    """The NTP servers the host's time daemon is configured with."""
    servers = []
    for name in hostinfo.ntp_servers():
        if name.replace(".", "").isdigit():
            servers.append(E("tt:NTPManual", E("tt:Type", "IPv4"), E("tt:IPv4Address", name)))
        else:
            servers.append(E("tt:NTPManual", E("tt:Type", "DNS"), E("tt:DNSname", name)))
    return E("tds:GetNTPResponse", E("tds:NTPInformation", E("tt:FromDHCP", False), servers))


@OPS.op("GetNetworkDefaultGateway", roles.STATUS_READ)
def get_network_default_gateway(call):
    """IPv4 default gateways from the routing table."""
    return E("tds:GetNetworkDefaultGatewayResponse", E(
        "tds:NetworkGateway", [E("tt:IPv4Address", g) for g in hostinfo.default_gateways()]))


def _port(description, default):
    try:
        return int(description.split(":")[1])
    except (AttributeError, IndexError, ValueError):
        return default


@OPS.op("GetNetworkProtocols", roles.STATUS_READ)
def get_network_protocols(call):
    """HTTP, HTTPS and RTSP with the ports we listen on."""
    server = call.ctx.config.server
    http_port = call.port if call.scheme == "http" else _port(server.http, 80)
    out = [E("tds:NetworkProtocols", E("tt:Name", "HTTP"), E("tt:Enabled", True),
             E("tt:Port", http_port)),
           E("tds:NetworkProtocols", E("tt:Name", "HTTPS"), E("tt:Enabled", bool(server.https)),
             E("tt:Port", _port(server.https, 443))),
           E("tds:NetworkProtocols", E("tt:Name", "RTSP"), E("tt:Enabled", True),
             E("tt:Port", call.ctx.rtsp_port()))]
    return E("tds:GetNetworkProtocolsResponse", out)


# -- scopes and discovery ---------------------------------------------------------

@OPS.op("GetScopes", roles.STATUS_READ)
def get_scopes(call):
    """Fixed and configurable scopes."""
    return E("tds:GetScopesResponse", [
        E("tds:Scopes", E("tt:ScopeDef", "Fixed" if is_fixed else "Configurable"),
          E("tt:ScopeItem", uri)) for uri, is_fixed in scopes.current(call.ctx)])


def _scope_args(call):
    items = [(c.text or "").strip() for c in soap.children(call.request, "Scopes")]
    if any(not s or len(s) > 256 for s in items) or len(items) > scopes.MAX_SCOPES:
        raise soap.invalid_arg("ter:InvalidArgVal", "scopes must be 1-256 character URIs")
    fixed = set(scopes.fixed(call.ctx))
    if any(s in fixed for s in items):
        raise soap.sender(("ter:OperationProhibited", "ter:ScopeOverwrite"),
                          "fixed scopes cannot be changed")
    return items


def _apply_scopes(call, keys, others):
    if keys:
        call.ctx.state.set(keys, call.principal, origin="onvif")
    scopes.save_extra(call.ctx, others)


@OPS.op("SetScopes", roles.SYSTEM_ADMIN)
def set_scopes(call):
    """Replace the configurable scopes (name/location go to the state)."""
    keys, others = scopes.split(_scope_args(call))
    keys.setdefault("device-location", "")
    _apply_scopes(call, keys, others)
    return _ok("SetScopes")


@OPS.op("AddScopes", roles.SYSTEM_ADMIN)
def add_scopes(call):
    """Add configurable scopes."""
    keys, others = scopes.split(_scope_args(call))
    _apply_scopes(call, keys, scopes.extra(call.ctx) + others)
    return _ok("AddScopes")


@OPS.op("RemoveScopes", roles.SYSTEM_ADMIN)
def remove_scopes(call):
    """Remove configurable scopes; the name scope cannot go (ter:NoScope for unknown ones)."""
    items = _scope_args(call)
    current = dict((uri, f) for uri, f in scopes.current(call.ctx))
    missing = [s for s in items if s not in current]
    if missing:
        raise soap.invalid_arg("ter:NoScope", "no such scope: %s" % missing[0])
    keys, others = scopes.split(items)
    if "device-name" in keys:
        raise soap.sender(("ter:OperationProhibited", "ter:FixedScope"),
                          "the name scope can be changed but not removed")
    extra = [s for s in scopes.extra(call.ctx) if s not in others]
    _apply_scopes(call, {"device-location": ""} if "device-location" in keys else {}, extra)
    return E("tds:RemoveScopesResponse", [E("tds:ScopeItem", s) for s in items])


@OPS.op("GetDiscoveryMode", roles.STATUS_READ)
def get_discovery_mode(call):
    """Discoverable or NonDiscoverable (the discovery-mode state key)."""
    mode = call.ctx.state.get("discovery-mode")
    return E("tds:GetDiscoveryModeResponse", E(
        "tds:DiscoveryMode", "Discoverable" if mode == "discoverable" else "NonDiscoverable"))


@OPS.op("SetDiscoveryMode", roles.SYSTEM_ADMIN)
def set_discovery_mode(call):
    """Change the discovery-mode state key."""
    mode = soap.value(call.request, "DiscoveryMode")
    if mode not in ("Discoverable", "NonDiscoverable"):
        raise soap.invalid_arg("ter:InvalidArgVal", "DiscoveryMode must be Discoverable or "
                                                    "NonDiscoverable")
    call.ctx.state.set({"discovery-mode": "discoverable" if mode == "Discoverable"
                        else "non-discoverable"}, call.principal, origin="onvif")
    return _ok("SetDiscoveryMode")


# -- users ------------------------------------------------------------------------

def _users(call):
    return call.ctx.auth.users


def _user_fault(e, name):
    if e.code == "CONFLICT" and "exists" in e.message:
        return soap.sender(("ter:OperationProhibited", "ter:UsernameClash"), e.message)
    if e.code == "CONFLICT":
        return soap.sender(("ter:InvalidArgVal", "ter:FixedUser"), e.message)
    if e.code == "NOT_FOUND":
        return soap.sender(("ter:InvalidArgVal", "ter:UsernameMissing"), e.message)
    if "password" in e.message:
        return soap.sender(("ter:OperationProhibited", "ter:PasswordTooWeak"
                            if "8-" in e.message else "ter:Password"), e.message)
    return soap.sender(("ter:OperationProhibited", "ter:Username"), e.message)


def _user_args(call, need_password):
    out = []
    for user in soap.children(call.request, "User"):
        name = soap.value(user, "Username")
        password = soap.value(user, "Password")
        level = soap.value(user, "UserLevel")
        if not name:
            raise soap.invalid_arg("ter:UsernameMissing", "a user needs a Username")
        if level not in LEVEL_TO_ROLE:
            raise soap.invalid_arg("ter:InvalidArgVal", "UserLevel must be Administrator, "
                                                        "Operator or User")
        if level == "Anonymous":
            raise soap.sender(("ter:OperationProhibited", "ter:AnonymousNotAllowed"),
                              "anonymous users are not supported")
        if need_password and not password:
            raise soap.sender(("ter:OperationProhibited", "ter:PasswordTooWeak"),
                              "a password is required")
        if password and len(password) > 128:
            raise soap.sender(("ter:OperationProhibited", "ter:PasswordTooLong"),
                              "passwords are at most 128 characters")
        if len(name) > 32:
            raise soap.sender(("ter:OperationProhibited", "ter:UsernameTooLong"),
                              "user names are at most 32 characters")
        out.append((name, password, LEVEL_TO_ROLE[level]))
    if not out:
        raise soap.invalid_arg("ter:InvalidArgVal", "no User given")
    return out


@OPS.op("GetUsers", roles.USERS_ADMIN)
def get_users(call):
    """Every user with its ONVIF level (never a password)."""
    users = _users(call)
    return E("tds:GetUsersResponse", [
        E("tds:User", E("tt:Username", name),
          E("tt:UserLevel", ROLE_TO_LEVEL.get(users.role(name), "User")))
        for name in users.names()])


@OPS.op("CreateUsers", roles.USERS_ADMIN)
def create_users(call):
    """Create users (all or none: every name is checked first)."""
    users = _users(call)
    wanted = _user_args(call, need_password=True)
    for name, _, _ in wanted:
        if users.get(name) is not None:
            raise soap.sender(("ter:OperationProhibited", "ter:UsernameClash"),
                              "user %s already exists" % name)
    for name, password, role in wanted:
        try:
            users.add(name, password, role)
        except UserError as e:
            raise _user_fault(e, name) from None
    return _ok("CreateUsers")


@OPS.op("DeleteUsers", roles.USERS_ADMIN)
def delete_users(call):
    """Delete users; the last administrator stays (ter:FixedUser)."""
    users = _users(call)
    names = [(c.text or "").strip() for c in soap.children(call.request, "Username")]
    if not names:
        raise soap.invalid_arg("ter:UsernameMissing", "no Username given")
    for name in names:
        if users.get(name) is None:
            raise soap.invalid_arg("ter:UsernameMissing", "no user %s" % name)
    for name in names:
        try:
            users.delete(name)
        except UserError as e:
            raise _user_fault(e, name) from None
    return _ok("DeleteUsers")


@OPS.op("SetUser", roles.USERS_ADMIN)
def set_user(call):
    """Change users' passwords and levels."""
    users = _users(call)
    wanted = _user_args(call, need_password=False)
    for name, _, _ in wanted:
        if users.get(name) is None:
            raise soap.invalid_arg("ter:UsernameMissing", "no user %s" % name)
    for name, password, role in wanted:
        try:
            if password:
                users.set_password(name, password)
            if users.role(name) != role:
                users.set_role(name, role)
        except UserError as e:
            raise _user_fault(e, name) from None
    return _ok("SetUser")


# -- reboot -------------------------------------------------------------------------

REBOOT_DELAY = 1.0


@OPS.op("SystemReboot", roles.CAMERA_CONTROL)
def system_reboot(call):
    """Restart the daemon (re-executing itself after an orderly stop); operator or better."""
    reactor = call.ctx.reactor
    reactor.callLater(REBOOT_DELAY, _restart, reactor)
    return E("tds:SystemRebootResponse", E("tds:Message", "restarting in %g s" % REBOOT_DELAY))


def _restart(reactor):
    log.warn("ONVIF SystemReboot: restarting the daemon")
    # Re-exec after shutdown: same pid, so systemd and test harnesses see one process.
    reactor.addSystemEventTrigger("after", "shutdown", _reexec)
    reactor.stop()


def _reexec():
    os.execv(sys.argv[0] if os.path.isabs(sys.argv[0]) else sys.executable,
             sys.argv if os.path.isabs(sys.argv[0]) else [sys.executable] + sys.argv)
