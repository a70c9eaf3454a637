"""`python -m services.kpi`"""

from services.kpi.app import SPEC
from services.kpi.settings import KpiSettings
from shared.service import serve

if __name__ == "__main__":
    serve(SPEC, KpiSettings())
