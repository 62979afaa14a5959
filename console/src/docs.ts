// The API reference page (/api/docs): Swagger UI, loaded from the local
// swagger-ui-bundle.js, rendering the served /api/openapi.json. "Try it out" requests
// carry the console's token when this tab has one (else use Authorize).

interface SwaggerRequest {
  headers: Record<string, string>;
}

declare const SwaggerUIBundle: {
  (options: Record<string, unknown>): unknown;
  presets: { apis: unknown };
};

const token = sessionStorage.getItem('arcana.token');

SwaggerUIBundle({
  url: '/api/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  layout: 'BaseLayout',
  presets: [SwaggerUIBundle.presets.apis],
  validatorUrl: null,
  tryItOutEnabled: false,
  requestInterceptor(req: SwaggerRequest) {
    if (token && !req.headers.Authorization) req.headers.Authorization = `Bearer ${token}`;
    return req;
  },
});
