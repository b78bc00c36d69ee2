"""Page routes: one module per console area, each a thin `APIRouter(route_class=PageRoute)`."""
