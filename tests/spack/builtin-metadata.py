# Run by `spack python` (see vendor-metadata.sh): prints, as JSON, the facts forge's export is
# checked against — for each named package of Spack's builtin repository, its versions, its
# variants (default, allowed values, whether multi-valued, the condition they exist under) and
# its dependencies (types and condition). Facts only: no code of the recipes is kept.
import json
import sys

import spack.repo


def text(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)):
        return [text(v) for v in value]
    return str(value)


out = {}
for name in sys.argv[1:]:
    try:
        cls = spack.repo.PATH.get_pkg_class(name)
    except Exception:  # not in builtin: forge's own namespace
        continue
    variants = []
    for when, by_name in cls.variants.items():
        for vname, v in sorted(by_name.items()):
            values = v.values
            allowed = sorted(str(x) for x in values) if isinstance(values, (list, tuple)) else []
            variants.append(
                {
                    "name": vname,
                    "default": text(v.default),
                    "multi": bool(v.multi),
                    "values": allowed,
                    "when": str(when) if str(when) else "",
                }
            )
    deps = []
    for when, by_name in cls.dependencies.items():
        for dname, d in sorted(by_name.items()):
            import spack.deptypes as dt

            deps.append(
                {"name": dname, "types": list(dt.flag_to_tuple(d.depflag)), "when": str(when)}
            )
    provides = sorted({str(v) for vs in getattr(cls, "provided", {}).values() for v in vs})
    out[name] = {
        "versions": [str(v) for v in cls.versions],
        "variants": variants,
        "depends": deps,
        "provides": provides,
    }
json.dump(out, sys.stdout, indent=1, sort_keys=True)
print()
