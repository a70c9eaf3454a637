"""`python -m services.kpi` serves; `python -m services.kpi rebuild ...` rebuilds state from the topics."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["rebuild"]:
        from services.kpi import rebuild

        sys.exit(rebuild.main(sys.argv[2:]))
    from services.kpi.app import SPEC
    from services.kpi.settings import KpiSettings
    from shared.service import serve

    serve(SPEC, KpiSettings())
