// A small Express service. `node server.js --check` loads every dependency,
// answers one request on an ephemeral port of 127.0.0.1 and exits 0 when the
// answer is right (the build runs it); without it the service listens on $PORT.
'use strict';
const express = require('express');
const compression = require('compression');
const cookieParser = require('cookie-parser');
const helmet = require('helmet');
const morgan = require('morgan');
const http = require('http');

const app = express();
app.use(helmet());
app.use(compression());
app.use(cookieParser());
if (!process.argv.includes('--check')) app.use(morgan('tiny'));
app.get('/hello/:name', (req, res) => {
  res.json({ hello: req.params.name, visits: Number(req.cookies.visits || 0) + 1 });
});

if (process.argv.includes('--check')) {
  const server = app.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    http.get({ host: '127.0.0.1', port, path: '/hello/farm', headers: { Cookie: 'visits=2' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        server.close();
        const ok = res.statusCode === 200 && JSON.parse(body).visits === 3;
        console.log(ok ? 'check passed' : `check failed: ${res.statusCode} ${body}`);
        process.exit(ok ? 0 : 1);
      });
    });
  });
} else {
  app.listen(Number(process.env.PORT || 8080));
}
